//! The native HTTP/1.1 engine: the live path for plain HTTP/1.1 requests, without hyper.
//!
//! Why: on the live path a proxy's cost is mostly framing — parsing and writing two heads
//! each way — and the machinery around it. hyper's server and client (HeaderMap building,
//! encoding, a connection task and a channel per upstream connection) were most of
//! shadowtap's instructions per request, and even a minimal hyper proxy costs more CPU per
//! request than nginx (see docs/PERFORMANCE.md, "What bought what", acaba80). This engine does what nginx does: one task per client
//! connection parses the head in place, writes the upstream's head straight from the parsed
//! slices, reads the response head the same way and streams both bodies through fixed
//! buffers, on a pooled upstream socket it owns for the exchange.
//!
//! It serves only the plain shape (see [`request::prepare`]); from the first request it does
//! not serve, the connection is handed to the hyper path with the bytes read so far
//! ([`Ended::Fallback`]), so every other shape — smuggling attempts, chunked uploads,
//! `Expect`, HTTP/1.0, h2c — keeps exactly the behaviour it had. This is the server side
//! of the engine; the upstream side is the HTTP/1 protocol layer in [`crate::h1`], which the
//! hyper path and the shadows use too, on the same pooled sockets. Both engines read the
//! router, the upstreams, the mirror and the metrics from one [`Context`]. The client
//! connection is a TCP socket or TLS over one ([`client_stream`]): the engine is generic
//! over it, so the plaintext engine is compiled for `TcpStream` alone.
//!
//! An exchange reads as its phases, each a method of `Connection`: `accept_head` → `route`
//! → `plan_mirror` → `forward` → `stream_answer` → `finish` (or `fail`, when no response
//! head came).
//!
//! Guarantees kept from the hyper path: exactly one response per request (a 502/504 written
//! by the proxy when the upstream fails before its head, a 408/400 when the client's body
//! stalls or breaks), bodies streamed in bounded memory, the header-read timeout (also while
//! a keep-alive connection idles between requests), the client-body timeout, the upstream's
//! response timeout, graceful shutdown after the in-flight exchange, and the same
//! metrics and `request failed` log event.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod client_stream;
mod mirror;
pub mod request;

use crate::config::ListenerConfig;
use crate::connection::{ConnectionInfo, Unanswered};
use crate::context::{Context, NativeUpstream};
use crate::error::ProxyError;
use crate::forward::ForwardError;
use crate::h1::chunked::{self, prefix, Decoder};
use crate::h1::exchange::{self, ClientHead, ExchangeError, HeadStop, Retries, Sent};
use crate::h1::pool::UpstreamConn;
use crate::h1::response::{self, Head};
use crate::h1::upload::{self, Heard, WriteFailure, Wrote};
use crate::message::fields::Fields;
use crate::message::pair::{PrimarySink, PrimarySlot};
use crate::message::tee::Tee;
use crate::shadow::RequestTee;
use crate::telemetry::logging::ErrorChain;
use crate::telemetry::metrics::{Handover, RouteMetrics, OTHER_METHOD};
use crate::telemetry::ErrorReason;
use bytes::{Buf, BytesMut};
use client_stream::ClientStream;
use request::{Prepared, Request};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Sleep;

/// Client read buffer: a request head, or a slice of a request body.
const READ_BUFFER: usize = 16 * 1024;
/// Largest slice of a request body read (and sent on) at once: a body longer than
/// [`READ_BUFFER`] is read in slices up to this size, so a 64 KiB upload costs one read and
/// one write instead of four of each. The buffer shrinks back after the body.
const MAX_BODY_READ: usize = 64 * 1024;
/// How long a connection closed before its request body was all read keeps reading (and
/// dropping) what the client still sends, so the answer is not lost to a reset.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// How a connection left the native engine.
pub enum Ended<S> {
    /// Closed (by either side, a timeout, shutdown, or an aborted exchange).
    Closed,
    /// A request the native engine does not serve: the socket and every byte read from it
    /// and not consumed, for the hyper path.
    Fallback(S, BytesMut),
    /// A reload made another config generation current between two requests: the socket
    /// and the bytes read and not consumed, to go on with the new generation's context.
    Reloaded(S, BytesMut),
}

/// How a connection notices a reload between requests: the generation it serves with, and
/// where the current one's number is read (a plain atomic load per request).
pub struct Reload<'a> {
    /// The current generation.
    pub current: &'a crate::generation::Current,
    /// The number of the generation `serve` was given.
    pub number: u64,
}

/// Whether the client connection carries on after an exchange.
enum Next {
    KeepAlive,
    Close,
    /// Close with the rest of the request body still coming: linger ([`close_unread`]).
    CloseUnread,
}

/// Serves one client connection until it closes or needs the hyper path.
/// `read` holds bytes already read from the client (after a reload), else nothing.
pub async fn serve<S: ClientStream>(
    mut client: S,
    mut read: BytesMut,
    context: &Context,
    info: &ConnectionInfo,
    config: &ListenerConfig,
    shutdown: &watch::Receiver<bool>,
    reload: Reload<'_>,
) -> Ended<S> {
    if read.capacity() == 0 {
        read.reserve(READ_BUFFER);
    }
    let mut connection = Connection {
        context,
        buf: read,
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
            // Looked at once bytes of a request are at hand, not before waiting for them: a
            // request is served by the generation current when it arrives.
            if reload.current.number() != reload.number {
                return Ended::Reloaded(client, connection.buf);
            }
            match connection.accept_head(info) {
                Accepted::Request(request) => break request,
                Accepted::Fallback => return Ended::Fallback(client, connection.buf),
                Accepted::Partial => {}
                Accepted::Nothing if stopping => return close(client).await,
                Accepted::Nothing => {}
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

/// The primary failed before it had the request: a request that was whole in hand still
/// goes to the shadows (as nginx's `mirror` and Envoy's mirror policy send it whatever the
/// primary does), and its pairs count `primary_unavailable`. Its copy is still open only if
/// nothing of it was sent: the copy is filled and completed together with a whole request's
/// send.
fn mirror_whole_request(flight: &mut InFlight<'_>) {
    if !flight.whole {
        return;
    }
    if let Some(copy) = flight.request_copy.as_mut() {
        copy.push_slice(&flight.body_start);
        copy.complete();
        flight.request_copy = None;
    }
}

/// The client's body failed mid-upload (it closed, reset or paused too long): the shadows'
/// copy ends as the source's loss (`dropped_client_aborted`). Every other copy the engine
/// lets go unfinished (the primary failed, timed out, or answered first) is dropped with its
/// flight, which counts it as the primary's (`dropped_primary_failed`).
fn client_failed(flight: &mut InFlight<'_>) {
    if let Some(copy) = flight.request_copy.as_mut() {
        copy.source_failed();
        flight.request_copy = None;
    }
}

/// Ends a client connection with a FIN once everything written is sent.
async fn close<S: ClientStream>(mut client: S) -> Ended<S> {
    let _ = client.shutdown().await;
    Ended::Closed
}

/// Ends a client connection whose request body was not all read (the answer came first):
/// a FIN, then what the client still sends is read and dropped until it closes, for at most
/// [`LINGER`]. Closing at once with unread bytes would send a reset, and a reset can make
/// the client's system drop the answer before the client reads it (RFC 9112 §9.6).
async fn close_unread<S: ClientStream>(mut client: S, mut scratch: BytesMut) -> Ended<S> {
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
    context: &'a Context,
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

/// What the client's buffer holds ([`Connection::accept_head`]).
enum Accepted {
    /// A request the native engine serves.
    Request(Request),
    /// One it does not serve: the connection goes to the hyper path.
    Fallback,
    /// The start of a request head: more is to be read.
    Partial,
    /// Nothing yet.
    Nothing,
}

/// A request between its phases: what [`Connection::route`] resolved and what the later
/// phases share and update.
struct InFlight<'a> {
    request: Request,
    upstream: &'a NativeUpstream,
    /// Counted once, whichever way the exchange ends (see `Unanswered`).
    unanswered: Unanswered<'a>,
    /// The client connection closes after this exchange (asked for, or shutting down).
    close_after: bool,
    /// The body bytes read with the head, kept apart for as long as the request may be sent
    /// again: every attempt writes from these, never from the client's buffer.
    body_start: BytesMut,
    /// How many of the body's bytes came with the head.
    in_buffer: usize,
    /// The whole request (head and body) is at hand: only such a request can go again once
    /// any of it was written.
    whole: bool,
    /// The client's body was all read, so its connection may carry on.
    body_consumed: bool,
    /// The shadows' capped copy of the request body, when the request is mirrored.
    request_copy: Option<Tee<RequestTee>>,
    /// Where the primary's answer is published for the shadows, when mirrored.
    primary_slot: Option<PrimarySlot>,
    /// The primary's end-to-end fields, kept while its head is parsed when mirrored.
    primary_fields: Fields,
}

/// A request whose response head has arrived ([`Connection::forward`]).
struct Forwarded {
    conn: UpstreamConn,
    head: Head,
    status: http::StatusCode,
    /// When the request's first bytes went up (the shadows' latency is compared from it).
    sent_at: Instant,
}

/// Why no response head came for a request.
enum Unsent {
    /// The upstream (or the client's body) failed: the proxy answers ([`Connection::fail`]).
    Failed(ForwardError),
    /// The client left while its request waited: no one to answer (already counted).
    Abandoned,
}

/// What ended the wait for a response head beside the upstream ([`watch_client`]).
enum Waited {
    /// The client closed its connection (or reset it).
    ClientClosed,
    /// The upstream's response timeout ran out.
    TimedOut,
}

impl<'a> Connection<'a> {
    /// Phase 1, accept head: whether `self.buf` starts with a complete request head the
    /// engine serves (its upstream head then written into `self.request_head`), one it hands
    /// to the hyper path, or not a whole head yet. `serve` reads the client between calls.
    #[inline(always)]
    fn accept_head(&mut self, info: &ConnectionInfo) -> Accepted {
        if self.buf.is_empty() {
            return Accepted::Nothing;
        }
        let context = self.context;
        let config = self.config;
        match request::prepare(
            &self.buf,
            context,
            info,
            config.max_headers,
            &mut self.request_head,
        ) {
            Prepared::Native(request) => Accepted::Request(request),
            Prepared::Fallback(reason) => {
                context.metrics().record_handover(reason);
                Accepted::Fallback
            }
            // The hyper path answers an oversized head (431).
            Prepared::Partial if self.buf.len() >= config.max_header_bytes => {
                context.metrics().record_handover(Handover::HeadTooLarge);
                Accepted::Fallback
            }
            Prepared::Partial => Accepted::Partial,
        }
    }

    /// One request and its response, as its phases. The request head is in
    /// `self.request_head`; its bytes are at the start of `self.buf`.
    async fn exchange<S: ClientStream>(
        &mut self,
        client: &mut S,
        request: Request,
        close_after: bool,
        mut deadline: Pin<&mut Sleep>,
    ) -> Next {
        let Some(mut flight) = self.route(request, close_after) else {
            // prepare() only accepts routes whose upstream has a native pool.
            return Next::Close;
        };
        self.plan_mirror(&mut flight);
        let mut forwarded = match self.forward(client, &mut flight, deadline.as_mut()).await {
            Ok(forwarded) => forwarded,
            Err(Unsent::Failed(error)) => {
                mirror_whole_request(&mut flight);
                return self.fail(client, flight, error).await;
            }
            Err(Unsent::Abandoned) => return Next::Close,
        };
        let route = self.context.metrics().route(Some(flight.request.route));
        let outcome = self
            .stream_answer(client, &mut flight, &mut forwarded, route)
            .await;
        self.finish(&flight, forwarded, route, outcome)
    }

    /// Phase 2, route: the upstream the request's route leads to (resolved by `prepare`),
    /// the request counted as under way, and its bytes taken out of the client's buffer —
    /// the head (the upstream gets `self.request_head`, written from it) and the body bytes
    /// read with it — once, so the buffer from now on holds only what follows.
    #[inline(always)]
    fn route(&mut self, request: Request, close_after: bool) -> Option<InFlight<'a>> {
        let context = self.context;
        let upstream = context.native_upstream(request.upstream)?;
        let unanswered = Unanswered::new(
            context.metrics(),
            Some(request.route),
            request.method,
            Instant::now(),
        );
        self.buf.advance(request.head_len.min(self.buf.len()));
        let in_buffer = usize::try_from(request.body_len)
            .unwrap_or(usize::MAX)
            .min(self.buf.len());
        // No body, no split: a split makes the buffer's storage shared.
        let body_start = match in_buffer {
            0 => BytesMut::new(),
            _ => self.buf.split_to(in_buffer),
        };
        let whole = request.body_len == in_buffer as u64;
        Some(InFlight {
            request,
            upstream,
            unanswered,
            close_after,
            body_start,
            in_buffer,
            whole,
            body_consumed: whole,
            request_copy: None,
            primary_slot: None,
            primary_fields: Fields::default(),
        })
    }

    /// Phase 3, plan mirror: asks the route's mirror plan whether this request is shadowed;
    /// when it is, the capped copy of its body and the slot for the primary's answer.
    #[inline(always)]
    fn plan_mirror(&self, flight: &mut InFlight<'a>) {
        if !flight.request.mirrors {
            return;
        }
        if let Some((copy, slot)) =
            mirror::plan(self.context, &mut flight.request, &self.request_head)
        {
            flight.request_copy = Some(copy);
            flight.primary_slot = Some(slot);
        }
    }

    /// Phase 4, forward: sends the request on a pooled upstream connection (a stale one
    /// retried by the exchange's one rule, [`Retries`]), streams the rest of its body from
    /// the client, and reads the response head while watching the client.
    async fn forward<S: ClientStream>(
        &mut self,
        client: &mut S,
        flight: &mut InFlight<'a>,
        mut deadline: Pin<&mut Sleep>,
    ) -> Result<Forwarded, Unsent> {
        let upstream = flight.upstream;
        let failed = |error| Unsent::Failed(ForwardError::from_exchange(&upstream.name, error));
        let mut retries = Retries::default();
        loop {
            let mut conn = match upstream.pool.check_out() {
                Some(conn) => conn,
                None => match upstream.pool.connect().await {
                    Ok(conn) => conn,
                    Err(error) => return Err(failed(error.into())),
                },
            };
            // `heard` through a closure of this function: its type differs per kind of
            // client stream, so `write_request` is compiled once for each, with one caller,
            // and inlined into it as when the engine served TCP alone.
            let sent = upload::write_request(
                &mut conn,
                &mut [
                    IoSlice::new(&self.request_head),
                    IoSlice::new(&flight.body_start),
                ],
                Some(upstream.response_timeout),
                |conn: &mut UpstreamConn| heard(conn),
            )
            .await;
            let answered = match sent {
                Ok(wrote) => matches!(wrote, Wrote::Answered(())),
                Err((failure, sent)) => {
                    let stale = !matches!(failure, WriteFailure::Stalled);
                    if stale && retries.again(conn.reused, sent, self.replayable(flight)) {
                        continue;
                    }
                    return Err(failed(upload_error(upstream, failure)));
                }
            };
            // A whole request's copy is whole whatever the primary did with it (it is then
            // completed below, `body_consumed` being set from the start).
            if let (true, Some(copy)) = (!answered || flight.whole, flight.request_copy.as_mut()) {
                copy.push_slice(&flight.body_start);
            }
            let sent_at = Instant::now();
            // The response timeout runs from the request's end: a body streamed for longer
            // than it is the client's pace, not the upstream's delay.
            let mut head_from = sent_at;
            if answered {
                // The upstream answered before the body was all sent: the client's
                // connection closes after the answer (the rest of its body unread).
            } else if !flight.whole {
                // A request whose body must still be read is never sent again: its first
                // bytes are let go, so the buffer's storage is the buffer's alone again.
                flight.body_start = BytesMut::new();
                let left = flight
                    .request
                    .body_len
                    .saturating_sub(flight.in_buffer as u64);
                let streamed = self
                    .stream_request_body(
                        client,
                        &mut conn,
                        left,
                        flight.request_copy.as_mut(),
                        upstream.response_timeout,
                        deadline.as_mut(),
                    )
                    .await;
                head_from = Instant::now();
                match streamed {
                    Ok(Wrote::All) => flight.body_consumed = true,
                    // Answered first: `body_consumed` stays false, so the client's
                    // connection closes after the answer.
                    Ok(Wrote::Answered(())) => {}
                    // The client left mid-body: counted as the hyper path counts it; the
                    // 400 is written in case it only stopped sending. The shadows' copy is
                    // the client's loss (see `client_failed`).
                    Err(UploadFailure::Client(error)) => {
                        client_failed(flight);
                        return Err(Unsent::Failed(ForwardError::ClientAborted {
                            source: Box::new(error),
                        }));
                    }
                    // The primary's failure: the copy, dropped with the flight, is counted
                    // as the reader's (`dropped_primary_failed`).
                    Err(UploadFailure::Upstream(failure)) => {
                        return Err(failed(upload_error(upstream, failure)));
                    }
                    Err(UploadFailure::ClientPaused) => {
                        client_failed(flight);
                        return Err(Unsent::Failed(ForwardError::ClientTimeout {
                            after: self.config.client_body_timeout,
                        }));
                    }
                }
            } else {
                flight.body_consumed = true;
            }
            // The whole body went to the primary: the shadows' copy is complete. (Not when
            // the upstream answered first: dropped, the copy is abandoned.)
            // Completed in place: `take()` would move the whole copy out, mirrored or not.
            if flight.body_consumed {
                if let Some(copy) = flight.request_copy.as_mut() {
                    copy.complete();
                    flight.request_copy = None;
                }
            }
            deadline
                .as_mut()
                .reset((head_from + upstream.response_timeout).into());
            let mut reader = ClientHead {
                is_head: flight.request.is_head,
                close: flight.close_after || !flight.body_consumed,
                via: self.config.via.pseudonym(),
                out: &mut self.response_head,
                keep: flight
                    .primary_slot
                    .is_some()
                    .then_some(&mut flight.primary_fields),
            };
            let limit = self.config.max_header_bytes;
            let watch = watch_client(client, &mut self.buf, limit, deadline.as_mut());
            match exchange::read_head(&mut conn.stream, &mut conn.buf, &mut reader, watch).await {
                Ok((head, status)) => {
                    return Ok(Forwarded {
                        conn,
                        head,
                        status,
                        sent_at,
                    })
                }
                Err(HeadStop::Watch(Waited::ClientClosed)) => {
                    // Abandoned at once: the upstream socket, mid-exchange, is closed (never
                    // pooled), and the request counted as the client's leaving.
                    drop(conn);
                    let id = self.request_head.get(flight.request.request_id.clone());
                    let id = id.and_then(|id| std::str::from_utf8(id).ok());
                    flight.unanswered.abandoned(id.unwrap_or("-"));
                    return Err(Unsent::Abandoned);
                }
                Err(HeadStop::Watch(Waited::TimedOut)) => {
                    return Err(failed(ExchangeError::TimedOut(upstream.response_timeout)));
                }
                Err(HeadStop::Upstream(ExchangeError::ClosedBeforeResponse(_)))
                    if retries.again(conn.reused, Sent::Request, self.replayable(flight)) => {}
                Err(HeadStop::Upstream(error)) => return Err(failed(error)),
            }
        }
    }

    /// Whether the request may go again after the upstream may have seen it (the exchange's
    /// rule, [`exchange::replayable`]). Asked only when a connection died.
    fn replayable(&self, flight: &InFlight<'_>) -> bool {
        let method = self.request_head.get(flight.request.method_text.clone());
        let bodiless = flight.request.body_len == 0;
        method.is_some_and(|method| exchange::replayable(method, bodiless))
    }

    /// Phase 5, stream answer: the request counted with its status, then the client's head
    /// and the body as framed, copied (capped) for the shadows when mirrored. `Ok(true)` when
    /// the upstream connection ended exactly at the end of the body.
    async fn stream_answer<S: ClientStream>(
        &mut self,
        client: &mut S,
        flight: &mut InFlight<'a>,
        forwarded: &mut Forwarded,
        route: &RouteMetrics,
    ) -> Result<bool, BodyFailure> {
        flight.unanswered.settle();
        self.context
            .metrics()
            .record_request(route, flight.request.method, forwarded.status);
        let mut capture = flight.primary_slot.take().map(|slot| {
            let fields = std::mem::take(&mut flight.primary_fields);
            mirror::capture(
                self.context,
                slot,
                forwarded.status,
                fields,
                forwarded.sent_at,
            )
        });
        // The client's head, then the body as framed ([`ToClient`]).
        let conn = &mut forwarded.conn;
        conn.buf.advance(forwarded.head.len);
        let mut sink = ToClient {
            client,
            out: &mut self.response_head,
            send_timeout: &self.config.client_send_timeout,
            capture: capture.as_mut(),
        };
        let framing = forwarded.head.framing;
        let outcome = exchange::read_body_into(
            &mut conn.stream,
            &mut conn.buf,
            framing,
            flight.request.trailers,
            &mut sink,
        )
        .await;
        if let (Ok(_), Some(capture)) = (&outcome, capture.as_mut()) {
            capture.complete();
        }
        outcome
    }

    /// Phase 6, finish: the exchange's duration counted, the upstream connection pooled when
    /// it ended exactly at the body's end, and whether the client's connection carries on.
    #[inline(always)]
    fn finish(
        &self,
        flight: &InFlight<'a>,
        forwarded: Forwarded,
        route: &RouteMetrics,
        outcome: Result<bool, BodyFailure>,
    ) -> Next {
        let metrics = self.context.metrics();
        let started = flight.unanswered.started();
        metrics.record_primary_duration(route, started.elapsed().as_secs_f64());
        let upstream = flight.upstream;
        let status = forwarded.head.status;
        match outcome {
            Ok(_) if !flight.body_consumed => {
                // Answered before the upload ended: the upstream socket holds a partial
                // request, and the client's the rest of its body.
                tracing::debug!(
                    upstream = %upstream.name,
                    status,
                    "primary answered before the request body was all sent"
                );
                Next::CloseUnread
            }
            Ok(reusable) => {
                if reusable && forwarded.head.keep_alive {
                    upstream.pool.check_in(forwarded.conn);
                }
                tracing::debug!(upstream = %upstream.name, status, "primary answered");
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
    async fn stream_request_body<S: ClientStream>(
        &mut self,
        client: &mut S,
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

    /// Answers a request that failed before the upstream's head (502/504 for the upstream,
    /// 408/400 for the client's body), counted and logged once like the hyper path does.
    /// The connection stays open only when the request body was consumed.
    async fn fail<S: ClientStream>(
        &mut self,
        client: &mut S,
        mut flight: InFlight<'_>,
        error: ForwardError,
    ) -> Next {
        let request = &flight.request;
        let body_consumed = flight.body_consumed;
        let close_after = flight.close_after;
        let started = flight.unanswered.started();
        flight.unanswered.settle();
        let error = ProxyError::Forward(error);
        let status = error.status();
        let metrics = self.context.metrics();
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
fn hear_client<S: ClientStream>(buf: &mut BytesMut, client: &mut S, limit: usize) -> ClientHeard {
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

/// What an upstream that fails during an upload is: a timeout when it stalled, a failed
/// connection otherwise.
fn upload_error(upstream: &NativeUpstream, failure: WriteFailure<io::Error>) -> ExchangeError {
    match failure {
        WriteFailure::Stalled => ExchangeError::TimedOut(upstream.response_timeout),
        WriteFailure::Heard(source) | WriteFailure::Io(source) => ExchangeError::Io(source),
    }
}

/// Waits beside the upstream for its response head ([`exchange::read_head`]): the
/// client's closing the connection (EOF) or resetting it is [`Waited::ClientClosed`], the
/// response timeout running out on `deadline` [`Waited::TimedOut`]. A pipelining client's
/// next request is no hang-up: its bytes are kept in `buf`, up to `limit` (the listener's
/// `max_header_bytes`; past that the watch on the client stops for this request).
async fn watch_client<S: ClientStream>(
    client: &mut S,
    buf: &mut BytesMut,
    limit: usize,
    mut deadline: Pin<&mut Sleep>,
) -> Waited {
    let mut watching = true;
    loop {
        tokio::select! {
            biased;
            ready = std::future::poll_fn(|cx| client.poll_read_ready(cx)), if watching => {
                match ready.map(|()| hear_client(buf, client, limit)) {
                    Ok(ClientHeard::Open) => {}
                    Ok(ClientHeard::Full) => watching = false,
                    Ok(ClientHeard::Closed) | Err(_) => return Waited::ClientClosed,
                }
            }
            () = deadline.as_mut() => return Waited::TimedOut,
        }
    }
}

/// Listens to the upstream mid-upload ([`upload::write_listening`]): `Some` once its final
/// answer's head is complete in the connection's buffer (or what it sent can never become
/// one, which reading the head then reports), an error when it closed or failed first.
fn heard(conn: &mut UpstreamConn) -> io::Result<Option<()>> {
    let state = upload::read_available(conn, exchange::MAX_RESPONSE_HEAD);
    if response::answered(&conn.buf, exchange::MAX_RESPONSE_HEAD) {
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
    /// Reading from the upstream failed, or its framing was broken.
    Upstream(ExchangeError),
}

impl From<ExchangeError> for BodyFailure {
    fn from(error: ExchangeError) -> BodyFailure {
        BodyFailure::Upstream(error)
    }
}

/// The native path's body sink: the client's socket. The client's head is in `out` and goes
/// with the first piece; a body not delimited by a length is re-framed as chunks in `out`;
/// the shadows' capture, when mirrored, takes the decoded data.
struct ToClient<'a, S> {
    client: &'a mut S,
    /// The client's head, then the re-framed bytes not yet written.
    out: &'a mut Vec<u8>,
    send_timeout: &'a std::time::Duration,
    capture: Option<&'a mut Tee<PrimarySink>>,
}

impl<S: ClientStream> exchange::BodySink for ToClient<'_, S> {
    type Error = BodyFailure;

    fn data(&mut self, data: &[u8], rechunk: bool) -> bool {
        if rechunk {
            chunked::push_chunk(self.out, data);
        }
        if let Some(capture) = self.capture.as_deref_mut() {
            capture.push_slice(data);
        }
        true
    }

    fn chunked(
        &mut self,
        decoder: &mut Decoder,
        input: &[u8],
    ) -> Result<usize, chunked::ChunkError> {
        let capture = &mut self.capture;
        decoder.decode_with(input, self.out, |data| {
            if let Some(capture) = capture.as_deref_mut() {
                capture.push_slice(data);
            }
        })
    }

    fn cut_short(&self) -> bool {
        false
    }

    async fn flush(&mut self, raw: &[u8]) -> Result<(), BodyFailure> {
        // Usually the socket takes it all at once: one system call, no timer and no nested
        // future; only what it leaves waits on the client.
        let wanted = self.out.len() + raw.len();
        let tried = match (self.out.is_empty(), raw.is_empty()) {
            (true, true) => return Ok(()),
            (true, false) => self.client.try_write(raw),
            (false, true) => self.client.try_write(self.out),
            (false, false) => self
                .client
                .try_write_vectored(&[IoSlice::new(self.out), IoSlice::new(raw)]),
        };
        let written = match tried {
            Ok(0) => return Err(BodyFailure::Client(io::ErrorKind::WriteZero.into())),
            Ok(written) => written,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => 0,
            Err(error) => return Err(BodyFailure::Client(error)),
        };
        if written < wanted {
            let out_rest = self.out.get(written..).unwrap_or_default();
            let raw_rest = raw
                .get(written.saturating_sub(self.out.len())..)
                .unwrap_or_default();
            let slices = &mut [IoSlice::new(out_rest), IoSlice::new(raw_rest)];
            write_to_client(self.client, slices, self.send_timeout)
                .await
                .map_err(BodyFailure::Client)?;
        }
        self.out.clear();
        Ok(())
    }

    async fn closed(&mut self) -> Result<(), BodyFailure> {
        write_client(self.client, chunked::LAST_CHUNK, self.send_timeout).await
    }
}

/// Writes `bytes` to the client ([`write_to_client`] for one buffer, kept apart because the
/// state of this future sits in every connection's task).
async fn write_client<S: ClientStream>(
    client: &mut S,
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
async fn write_to_client<S: ClientStream>(
    client: &mut S,
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
/// rare, and its timer would otherwise sit in the state of every connection's task, and so
/// in every idle connection's memory (see docs/PERFORMANCE.md, "Memory", and "What bought
/// what", ed8e8fd).
fn wait_writable<'a, S: ClientStream>(
    client: &'a mut S,
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
