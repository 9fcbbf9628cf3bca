//! Sending mirrored requests: one bounded queue, one connection pool, one in-flight cap and
//! one circuit breaker per shadow upstream.
//!
//! The live path only ever calls [`ShadowTarget::try_enqueue`], which never waits: a full
//! queue drops the job and counts it. A dispatcher task per shadow waits for an in-flight
//! slot, then takes the next job in order (so every waiting job is in the queue), and runs
//! each request under the mirror deadline (queue time included), keeping at most
//! `max_response_body_bytes` of the answer (a longer one is read on as a length and hash,
//! [`crate::digest`], while that can still settle its verdict). Each shadow has its own
//! queue and pool, so one slow shadow never delays another.

use super::breaker::{Breaker, BreakerState, Transition};
use super::notice::Notices;
use crate::config::{MirrorConfig, UpstreamConfig};
use crate::forward::{ForwardError, UpstreamClient};
use crate::message::budget::{Budget, Keeper, ReadBound};
use crate::message::copy::HeaderEdits;
use crate::message::fields::Fields;
use crate::message::pair::{
    CapturedRequest, CapturedResponse, CompletedPair, PairSink, PrimaryCell, PrimarySlot,
};
use crate::telemetry::metrics::Task;
use crate::telemetry::{Metrics, MirrorOutcome, PairResult, ShadowGauges};
use bytes::Bytes;
use http_body_util::BodyExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, Semaphore};
use tracing::Instrument;

/// Where a job's outcomes are counted and its pair goes: those of the config that mirrored it
/// (a reload builds new ones while jobs of the old config are still queued).
pub struct Outlet {
    /// The route table the job's `route` indexes.
    pub metrics: Arc<Metrics>,
    /// Receives completed pairs; `None` when nothing compares them.
    pub sink: Option<Arc<dyn PairSink>>,
}

/// One mirrored request waiting for its shadow.
pub struct ShadowJob {
    /// Its config's metrics and pair sink.
    pub outlet: Arc<Outlet>,
    /// Route and label index (metrics).
    pub route: (usize, usize),
    /// Position of the shadow in the route's policy (metrics).
    pub shadow: usize,
    /// The path and query to send (the policy's rewrite applied).
    pub path_and_query: http::uri::PathAndQuery,
    /// How the copy's fields differ from the primary's.
    pub edits: Arc<HeaderEdits>,
    /// The request as the primary received it, complete body included: the copy is this
    /// with `path_and_query` and `edits`.
    pub captured: Arc<CapturedRequest>,
    /// What to do with the answer.
    pub role: JobRole,
    /// When the job was queued; the deadline counts from here.
    pub enqueued: Instant,
}

/// What a job's answer is for.
pub enum JobRole {
    /// A shadow: pair its answer with the primary's (and the secondary's, if any).
    Shadow {
        /// Where the primary's answer appears.
        primary: PrimaryCell,
        /// Where the secondary's answer appears, when the route has one.
        secondary: Option<PrimaryCell>,
    },
    /// The route's secondary: publish the answer for the shadows' noise check.
    Secondary {
        /// Filled with the answer (or `None` when it failed).
        slot: PrimarySlot,
        /// Where the primary's answer appears (it bounds how much of the answer is read).
        primary: PrimaryCell,
    },
}

/// Why a shadow request failed (logged rate-limited at WARN; counted as `error`).
#[derive(Debug, thiserror::Error)]
enum ShadowError {
    #[error("shadow request failed")]
    Request(#[source] ForwardError),
    #[error("shadow response body failed")]
    Body(#[source] crate::forward::BoxError),
    #[error("shadow request failed")]
    Native(#[source] crate::h1::exchange::ExchangeError),
    #[error("no valid request target for the shadow")]
    Uri(#[source] http::Error),
}

/// Settings a dispatcher needs, copied from the config.
#[derive(Debug, Clone, Copy)]
struct Limits {
    timeout: Duration,
    max_response_body_bytes: usize,
}

/// How a shadow is spoken to: shadowtap's own HTTP/1.1 client (a one-shot request with a
/// known body), or hyper's for an h2c shadow. One pool per shadow either way.
enum ShadowClient {
    Http1(crate::h1::client::Client),
    Http2(UpstreamClient<CopyBody>),
}

/// A copy's body for hyper's client: the captured bytes in one frame, then the trailer
/// fields, when the original had them, in a second.
struct CopyBody {
    data: Option<Bytes>,
    trailers: Option<http::HeaderMap>,
}

impl http_body::Body for CopyBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let frame = match this.data.take() {
            Some(data) => Some(http_body::Frame::data(data)),
            None => this.trailers.take().map(http_body::Frame::trailers),
        };
        std::task::Poll::Ready(frame.map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let len = self.data.as_ref().map_or(0, Bytes::len);
        http_body::SizeHint::with_exact(u64::try_from(len).unwrap_or(u64::MAX))
    }
}

/// A shadow upstream as the live path sees it: where to send, and whether it is healthy.
pub struct ShadowTarget {
    name: Arc<str>,
    /// Failures and drops, logged rate-limited.
    notices: Arc<Notices>,
    sender: mpsc::Sender<ShadowJob>,
    receiver: Mutex<Option<mpsc::Receiver<ShadowJob>>>,
    breaker: Arc<Breaker>,
    gauges: Arc<ShadowGauges>,
    client: ShadowClient,
    limits: Limits,
    max_in_flight: usize,
    /// Where the answers' bodies are held until compared.
    budget: Arc<Budget>,
    /// Flipped by [`ShadowTarget::stop`] at shutdown.
    stop: tokio::sync::watch::Sender<bool>,
    /// Flipped by [`ShadowTarget::retire`] when a reload no longer uses the target.
    retire: tokio::sync::watch::Sender<bool>,
}

impl ShadowTarget {
    /// Builds the target with its own pool; nothing runs until [`ShadowTarget::start`].
    /// Answers are kept against `budget`.
    pub fn new(
        name: &str,
        upstream: &UpstreamConfig,
        mirror: &MirrorConfig,
        metrics: &Metrics,
        budget: Arc<Budget>,
    ) -> ShadowTarget {
        let (sender, receiver) = mpsc::channel(mirror.queue_capacity);
        // The shadow's own pool (never shared with live traffic), kept no larger than the
        // in-flight cap allows it to be used.
        let pooled = UpstreamConfig {
            pool_max_idle: upstream.pool_max_idle.min(mirror.max_in_flight),
            ..upstream.clone()
        };
        let client = match upstream.protocol {
            crate::config::UpstreamProtocol::Http1 => ShadowClient::Http1(
                crate::h1::client::Client::new(&pooled, pooled.pool_max_idle),
            ),
            // `auto` decides per upstream at its first connection (`UpstreamClient`).
            crate::config::UpstreamProtocol::Http2 | crate::config::UpstreamProtocol::Auto => {
                ShadowClient::Http2(UpstreamClient::new(name, &pooled))
            }
        };
        let breaker_settings = &mirror.circuit_breaker;
        let gauges = Arc::new(metrics.shadow_gauges(name));
        let name: Arc<str> = Arc::from(name);
        let breaker = Breaker::new(
            super::breaker::BreakerConfig {
                window: breaker_settings.window,
                min_requests: breaker_settings.min_requests,
                error_ratio: breaker_settings.error_ratio,
                initial_cooldown: breaker_settings.initial_cooldown,
                cooldown: breaker_settings.cooldown,
                probes: breaker_settings.probes,
                probe_timeout: mirror.timeout,
            },
            Instant::now(),
        )
        .observed(transition_observer(name.clone(), gauges.clone()));
        gauges.circuit_state.set(breaker.state().gauge());
        ShadowTarget {
            notices: Arc::new(Notices::new(name.clone(), super::notice::INTERVAL)),
            name,
            sender,
            receiver: Mutex::new(Some(receiver)),
            breaker: Arc::new(breaker),
            gauges,
            client,
            limits: Limits {
                timeout: mirror.timeout,
                max_response_body_bytes: mirror.max_response_body_bytes,
            },
            max_in_flight: mirror.max_in_flight,
            budget,
            stop: tokio::sync::watch::Sender::new(false),
            retire: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Retires the target when a reload replaces or removes its shadow: it takes no new job
    /// (a late one is counted as `dropped_queue_full`), sends those already queued, and then
    /// its dispatcher ends.
    pub fn retire(&self) {
        let _ = self.retire.send(true);
    }

    /// The shadow upstream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Logs (rate-limited) an outcome of a request sampled for this shadow, when it is a
    /// failure or a drop.
    pub fn notice(&self, outcome: MirrorOutcome) {
        self.notices.outcome(outcome, None);
    }

    /// Whether the breaker is open (a cheap look for sampling).
    pub fn circuit_open(&self) -> bool {
        self.breaker.is_open(Instant::now())
    }

    /// Queues a job without waiting. `false` when the queue is full (or the dispatcher is
    /// gone): the job is dropped and the caller counts it.
    pub fn try_enqueue(&self, job: ShadowJob) -> bool {
        // Count before sending, so the dispatcher's decrement can never land first.
        self.gauges.queue_depth.increment(1.0);
        let queued = self.sender.try_send(job).is_ok();
        if !queued {
            self.gauges.queue_depth.decrement(1.0);
        }
        queued
    }

    /// Stops the dispatcher: queued jobs are dropped, requests under way finish (each is
    /// bounded by the mirror timeout).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Starts the dispatcher task (once; later calls do nothing). Needs a Tokio runtime.
    pub fn start(self: &Arc<Self>) {
        let receiver = self.receiver.lock().ok().and_then(|mut slot| slot.take());
        let Some(receiver) = receiver else { return };
        let target = self.clone();
        let span = tracing::info_span!("shadow", shadow = %self.name);
        tokio::spawn(target.dispatch(receiver).instrument(span));
        tokio::spawn(self.clone().flush_notices());
    }

    /// Every interval, logs the failures and drops suppressed since their last line, so a
    /// burst that ends is accounted for; stops with the dispatcher.
    async fn flush_notices(self: Arc<Self>) {
        let mut stop_flag = self.stop.subscribe();
        let mut stop = std::pin::pin!(crate::shutdown::flagged(&mut stop_flag));
        let mut ticks = tokio::time::interval(super::notice::INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = &mut stop => break,
                _ = ticks.tick() => self.notices.flush(),
            }
        }
        self.notices.flush();
    }

    async fn dispatch(self: Arc<Self>, mut receiver: mpsc::Receiver<ShadowJob>) {
        let slots = Arc::new(Semaphore::new(self.max_in_flight));
        let mut stop_flag = self.stop.subscribe();
        // One stop future for the dispatcher's life, looked at only when there is nothing
        // to do: a fresh one per job would register (and unregister) a waiter every time.
        let mut stop = std::pin::pin!(crate::shutdown::flagged(&mut stop_flag));
        let mut retire_flag = self.retire.subscribe();
        let mut retire = std::pin::pin!(crate::shutdown::flagged(&mut retire_flag));
        let mut retiring = false;
        loop {
            // A slot first, then a job: a job leaves the queue only when it can be sent, so
            // waiting jobs are all in the queue (and its gauge), never more than its capacity.
            // Waiting here is fine: it is the shadow's own queue, and it is bounded.
            let permit = tokio::select! {
                biased;
                permit = slots.clone().acquire_owned() => permit,
                () = &mut stop => break,
            };
            let Ok(permit) = permit else {
                break;
            };
            let job = tokio::select! {
                biased;
                job = receiver.recv() => job,
                () = &mut stop => break,
                () = &mut retire, if !retiring => {
                    // Retired by a reload: no new jobs; those queued are still sent.
                    retiring = true;
                    receiver.close();
                    continue;
                }
            };
            let Some(job) = job else {
                break;
            };
            self.gauges.queue_depth.decrement(1.0);
            let target = self.clone();
            let metrics = job.outlet.metrics.clone();
            // Boxed: the spawn path moves its future by value several times, and this one
            // (the job, the exchange, the pairing) is large; a box moves as a pointer (see
            // docs/PERFORMANCE.md, "What bought what", cebecee).
            // Supervised: a panic is logged (in the shadow's span) and counted.
            let task = Box::pin(target.run(job, permit));
            let task = crate::supervise::task(task, metrics, Task::Shadow);
            tokio::spawn(task.in_current_span());
        }
        if retiring {
            // Drained: the notices task ends with it.
            let _ = self.stop.send(true);
        }
    }

    async fn run(self: Arc<Self>, job: ShadowJob, permit: tokio::sync::OwnedSemaphorePermit) {
        let outlet = job.outlet.clone();
        let metrics = &outlet.metrics;
        let route_metrics = metrics.route(Some(job.route));
        let queued = job.enqueued.elapsed();
        let Some(remaining) = self.limits.timeout.checked_sub(queued) else {
            metrics.record_mirror(route_metrics, job.shadow, MirrorOutcome::Timeout);
            self.notices.outcome(MirrorOutcome::Timeout, None);
            return;
        };
        let Some(admission) = self.breaker.admit(Instant::now()) else {
            metrics.record_mirror(route_metrics, job.shadow, MirrorOutcome::SkippedCircuitOpen);
            self.gauges.circuit_state.set(self.breaker.state().gauge());
            return;
        };
        self.gauges.in_flight.increment(1.0);
        let started = Instant::now();
        // Past the cap, the shadow's answer is read only while its verdict is open.
        let primary_cell = match &job.role {
            JobRole::Shadow { primary, .. } | JobRole::Secondary { primary, .. } => primary.clone(),
        };
        let bound = move || read_bound(&primary_cell);
        let result = tokio::time::timeout(
            remaining,
            self.send(&job.captured, &job.path_and_query, &job.edits, &bound),
        )
        .await;
        let latency = started.elapsed();
        self.gauges.in_flight.decrement(1.0);
        drop(permit);

        let response = match result {
            Ok(Ok(response)) => {
                self.breaker.record(admission, true, Instant::now());
                metrics.record_mirror(route_metrics, job.shadow, MirrorOutcome::Completed);
                metrics.record_shadow_duration(route_metrics, job.shadow, latency.as_secs_f64());
                Some(CapturedResponse {
                    latency,
                    ..response
                })
            }
            Ok(Err(error)) => {
                self.breaker.record(admission, false, Instant::now());
                metrics.record_mirror(route_metrics, job.shadow, MirrorOutcome::Error);
                self.notices.outcome(
                    MirrorOutcome::Error,
                    Some(&crate::telemetry::logging::ErrorChain(&error)),
                );
                None
            }
            Err(_) => {
                self.breaker.record(admission, false, Instant::now());
                metrics.record_mirror(route_metrics, job.shadow, MirrorOutcome::Timeout);
                self.notices.outcome(MirrorOutcome::Timeout, None);
                None
            }
        };
        self.gauges.circuit_state.set(self.breaker.state().gauge());
        let (primary_cell, secondary_cell) = match job.role {
            JobRole::Secondary { slot, .. } => {
                slot.publish(response);
                return;
            }
            JobRole::Shadow { primary, secondary } => (primary, secondary),
        };
        let Some(shadow_response) = response else {
            return;
        };

        // The shadow is done; wait (bounded) for the primary's answer to pair with it, and
        // for the secondary's when the route has one.
        let primary = wait_for(&primary_cell, self.limits.timeout).await;
        let secondary = match &secondary_cell {
            Some(cell) => wait_for(cell, self.limits.timeout).await,
            None => None,
        };
        match primary {
            Some(primary) => {
                metrics.record_pair(route_metrics, job.shadow, PairResult::Complete);
                if let Some(sink) = &outlet.sink {
                    sink.accept(CompletedPair {
                        route: metrics.route(Some(job.route)).label_shared(),
                        route_index: job.route.0,
                        route_key: job.route,
                        shadow: self.name.clone(),
                        shadow_position: job.shadow,
                        request: job.captured,
                        primary,
                        shadow_response,
                        secondary,
                        completed_at: SystemTime::now(),
                    });
                }
            }
            None => metrics.record_pair(route_metrics, job.shadow, PairResult::PrimaryUnavailable),
        }
    }

    /// Sends one request and keeps at most `max_response_body_bytes` of the answer; past the
    /// cap (or the byte budget) the rest is read and only hashed, so the body is still
    /// compared by length and hash, until it is longer than `bound` (then the verdict is
    /// settled and the rest is not read). The mirror deadline bounds the read.
    async fn send(
        &self,
        request: &CapturedRequest,
        path_and_query: &http::uri::PathAndQuery,
        edits: &HeaderEdits,
        bound: &ReadBound,
    ) -> Result<CapturedResponse, ShadowError> {
        let cap = self.limits.max_response_body_bytes;
        let native = match &self.client {
            ShadowClient::Http1(native) => native,
            // Boxed: hyper's exchange is a large future, and every shadow request's task
            // (HTTP/1 shadows' too) would carry its size, moved into the task's box whole.
            ShadowClient::Http2(client) => {
                return Box::pin(self.send_h2(client, request, path_and_query, edits, bound)).await
            }
        };
        let answer = native
            .send(
                &request.method,
                path_and_query.as_str(),
                &request.headers,
                edits,
                &request.body,
                request.trailers.as_ref(),
                Keeper::new(cap, &self.budget).bounded_by(bound),
            )
            .await
            .map_err(ShadowError::Native)?;
        Ok(CapturedResponse::from_kept(
            answer.status,
            answer.headers,
            answer.body,
        ))
    }

    /// [`Self::send`] through hyper's client (h2 shadows, and `auto` ones).
    async fn send_h2(
        &self,
        client: &UpstreamClient<CopyBody>,
        request: &CapturedRequest,
        path_and_query: &http::uri::PathAndQuery,
        edits: &HeaderEdits,
        bound: &ReadBound,
    ) -> Result<CapturedResponse, ShadowError> {
        let uri = client
            .uri_for(Some(path_and_query))
            .map_err(ShadowError::Uri)?;
        let mut copy = http::Request::new(CopyBody {
            data: Some(request.body.clone()).filter(|data| !data.is_empty()),
            trailers: request.trailers.clone(),
        });
        *copy.method_mut() = request.method.clone();
        *copy.uri_mut() = uri;
        *copy.headers_mut() = edits.apply(&request.headers);
        let response = client.send(copy).await.map_err(ShadowError::Request)?;
        let (parts, mut body) = response.into_parts();
        let cap = self.limits.max_response_body_bytes;
        let mut keeper = Keeper::new(cap, &self.budget).bounded_by(bound);
        let mut trailers = None;
        while let Some(frame) = body.frame().await {
            let frame = match frame.map_err(ShadowError::Body)?.into_data() {
                Ok(data) if keeper.keep(&data) => continue,
                Ok(_) => break,
                Err(frame) => frame,
            };
            // Compared with the head, as the primary's are (a gRPC status is here).
            if let Ok(fields) = frame.into_trailers() {
                trailers = Some(fields);
            }
        }
        // A body cut short is dropped here, unread: hyper resets its stream rather than
        // draining the rest. The client removed the hop-by-hop fields.
        let mut fields = Fields::from_map(&parts.headers);
        if let Some(trailers) = &trailers {
            fields = fields.with_trailers(trailers);
        }
        Ok(CapturedResponse::from_kept(
            parts.status,
            fields,
            keeper.finish(),
        ))
    }
}

/// Past the cap, how much of a shadow's answer is worth reading: once it is longer than the
/// primary's whole body its verdict is settled (the bodies differ), and once the primary has
/// failed there is no pair at all. `None` while the primary's answer is still coming, or when
/// its length is not known.
fn read_bound(primary: &PrimaryCell) -> Option<u64> {
    match primary.get()? {
        Some(answer) => answer.whole_len(),
        None => Some(0),
    }
}

/// Logs the breaker's transitions (opened at WARN, probing and recovered at INFO) and keeps
/// the state gauge current. Not rate-limited: the cooldowns already space them out.
fn transition_observer(shadow: Arc<str>, gauges: Arc<ShadowGauges>) -> super::breaker::Observer {
    Box::new(move |transition: Transition| {
        gauges.circuit_state.set(transition.to.gauge());
        let shadow = &*shadow;
        match transition.to {
            BreakerState::Open => tracing::warn!(
                shadow,
                failures = transition.failures,
                requests = transition.requests,
                cooldown_ms = u64::try_from(transition.cooldown.as_millis()).unwrap_or(u64::MAX),
                "shadow circuit breaker opened: mirroring to this shadow paused"
            ),
            BreakerState::HalfOpen => tracing::info!(
                shadow,
                share = 1.0 / f64::from(super::breaker::FIRST_PERIOD),
                "shadow circuit breaker half-open: probing with a growing share of copies"
            ),
            BreakerState::Closed => tracing::info!(
                shadow,
                outage_ms = u64::try_from(transition.outage.as_millis()).unwrap_or(u64::MAX),
                "shadow circuit breaker closed: the shadow recovered, full mirroring resumed"
            ),
        }
    })
}

/// The published answer in `cell`, waiting at most `limit`; `None` if it never came or failed.
async fn wait_for(cell: &PrimaryCell, limit: Duration) -> Option<Arc<CapturedResponse>> {
    tokio::time::timeout(limit, cell.wait())
        .await
        .ok()
        .and_then(|answer| answer.clone())
}
