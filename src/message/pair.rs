//! The hand-off between mirroring and comparison: what a completed (primary, shadow) pair
//! holds, and the one interface that consumes it.
//!
//! The primary's answer is captured by the response tee on the live path and published once
//! into a [`PrimaryCell`]; each shadow task, once its own answer is in, waits (bounded) for
//! that cell and hands the pair to the [`PairSink`]. Neither side ever waits for the other
//! on the live path.

use super::budget::{Budget, Held};
use super::fields::Fields;
use crate::digest::BodyDigest;
use bytes::Bytes;
use http::{Method, StatusCode, Version};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::SetOnce;

/// The request as it was forwarded to the primary (after hop-by-hop removal and
/// `X-Forwarded-*`), with its body.
#[derive(Debug, Clone)]
pub struct CapturedRequest {
    /// Method.
    pub method: Method,
    /// The protocol the client spoke (a recording says which).
    pub version: Version,
    /// Path and query as received.
    pub path_and_query: String,
    /// Header fields sent to the primary.
    pub headers: Fields,
    /// The whole body (within the route's `max_body_bytes`).
    pub body: Bytes,
    /// The body's trailer fields, when it ended with a trailer section (sent on with it).
    pub trailers: Option<http::HeaderMap>,
    /// The `x-request-id` both upstreams saw.
    pub request_id: String,
    /// The body's bytes held against `mirror.max_buffered_bytes` while this lives.
    pub held: Held,
}

/// One upstream's answer: its body kept whole up to `mirror.max_response_body_bytes` (and
/// within `mirror.max_buffered_bytes`), or else known by its length and hash.
#[derive(Debug, Clone)]
pub struct CapturedResponse {
    /// Status.
    pub status: StatusCode,
    /// Response header fields as received (hop-by-hop removed).
    pub headers: Fields,
    /// The whole body; empty when it was not kept (`truncated` or `over_budget`).
    pub body: Bytes,
    /// The body was longer than the cap and was not kept.
    pub truncated: bool,
    /// The body did not fit `mirror.max_buffered_bytes` and was not kept.
    pub over_budget: bool,
    /// Length and hash of a body that was not kept but was seen whole: it is compared by
    /// those. `None` for a kept body, or one neither kept nor digested.
    pub digest: Option<BodyDigest>,
    /// Reading stopped early: the body is longer than `digest`'s length, which covers only
    /// its beginning (a shadow's answer already longer than the primary's whole body).
    pub cut_short: bool,
    /// The body's bytes held against `mirror.max_buffered_bytes` while this lives.
    pub held: Held,
    /// From sending the request to the last body byte.
    pub latency: Duration,
}

impl CapturedResponse {
    /// An answer whose body is held against `budget`, or dropped (`over_budget`) when it
    /// does not fit; the latency is set by the caller, who timed the exchange.
    pub fn kept(
        status: StatusCode,
        headers: Fields,
        body: Bytes,
        truncated: bool,
        budget: &Arc<Budget>,
    ) -> CapturedResponse {
        match budget.try_hold(body.len()) {
            Some(held) => CapturedResponse {
                status,
                headers,
                body,
                truncated,
                over_budget: false,
                digest: None,
                cut_short: false,
                held,
                latency: Duration::ZERO,
            },
            None => CapturedResponse::over_budget(status, headers),
        }
    }

    /// An answer whose body was held as it came — read through a
    /// [`Keeper`](super::budget::Keeper), or captured by a tee charged to the budget — or
    /// not kept when it stopped fitting.
    pub fn from_kept(
        status: StatusCode,
        headers: Fields,
        kept: super::budget::KeptBody,
    ) -> CapturedResponse {
        CapturedResponse {
            status,
            headers,
            body: kept.body,
            truncated: kept.truncated,
            over_budget: kept.over_budget,
            digest: kept.digest,
            cut_short: kept.cut_short,
            held: kept.held,
            latency: Duration::ZERO,
        }
    }

    /// An answer whose body did not fit the budget: its status and headers are compared,
    /// its body is not.
    pub fn over_budget(status: StatusCode, headers: Fields) -> CapturedResponse {
        CapturedResponse {
            status,
            headers,
            body: Bytes::new(),
            truncated: false,
            over_budget: true,
            digest: None,
            cut_short: false,
            held: Held::nothing(),
            latency: Duration::ZERO,
        }
    }

    /// The whole body's length, when known: kept, or digested to its end.
    pub fn whole_len(&self) -> Option<u64> {
        match (self.truncated || self.over_budget, self.digest) {
            (false, _) => u64::try_from(self.body.len()).ok(),
            (true, Some(digest)) if !self.cut_short => Some(digest.len),
            (true, _) => None,
        }
    }

    /// The same answer with its latency.
    pub fn with_latency(self, latency: Duration) -> CapturedResponse {
        CapturedResponse { latency, ..self }
    }
}

/// A completed pair, ready to compare.
#[derive(Debug, Clone)]
pub struct CompletedPair {
    /// The route label (template) of the request.
    pub route: Arc<str>,
    /// Index of the route in the config (selects its comparison rules).
    pub route_index: usize,
    /// The route and label indices (selects the pair's metric handles).
    pub route_key: (usize, usize),
    /// The shadow upstream's name.
    pub shadow: Arc<str>,
    /// The shadow's position in the route's policy (selects its metric handles).
    pub shadow_position: usize,
    /// The request both received.
    pub request: Arc<CapturedRequest>,
    /// The primary's answer.
    pub primary: Arc<CapturedResponse>,
    /// The shadow's answer.
    pub shadow_response: CapturedResponse,
    /// The secondary's answer, when the route has a secondary and it answered.
    pub secondary: Option<Arc<CapturedResponse>>,
    /// When the pair was completed.
    pub completed_at: SystemTime,
}

/// Consumes completed pairs (the comparison engine). Called from shadow tasks, never from
/// the live path; implementations must not block for long.
pub trait PairSink: Send + Sync + 'static {
    /// Takes one pair.
    fn accept(&self, pair: CompletedPair);
}

/// Where the primary's captured answer is published once: `Some` when it was seen whole
/// (kept, or digested when too large to keep), `None` when it was not (failed, aborted).
pub type PrimaryCell = Arc<SetOnce<Option<Arc<CapturedResponse>>>>;

/// The live path's end of a [`PrimaryCell`]. Publishing is guaranteed: if the slot is dropped
/// without an answer (the primary failed, the client vanished), it publishes `None`, so no
/// shadow task waits for an answer that will never come.
pub struct PrimarySlot {
    cell: PrimaryCell,
}

impl PrimarySlot {
    /// A new slot and the cell shadow tasks wait on.
    pub fn new() -> (PrimarySlot, PrimaryCell) {
        let cell: PrimaryCell = Arc::new(SetOnce::new());
        (PrimarySlot { cell: cell.clone() }, cell)
    }

    /// Publishes the primary's answer.
    pub fn publish(self, response: Option<CapturedResponse>) {
        let _ = self.cell.set(response.map(Arc::new));
    }
}

impl Drop for PrimarySlot {
    fn drop(&mut self) {
        // No-op when `publish` already set it.
        let _ = self.cell.set(None);
    }
}

/// The response tee's sink on the live path: publishes the primary's answer when its body
/// has been sent to the client in full.
pub struct PrimarySink {
    slot: PrimarySlot,
    status: StatusCode,
    headers: Fields,
    started: std::time::Instant,
    budget: Arc<Budget>,
}

impl PrimarySink {
    /// Captures the head now; the body arrives through the tee.
    pub fn new(
        slot: PrimarySlot,
        status: StatusCode,
        headers: Fields,
        started: std::time::Instant,
        budget: Arc<Budget>,
    ) -> PrimarySink {
        PrimarySink {
            slot,
            status,
            headers,
            started,
            budget,
        }
    }
}

/// The captured answer is charged to the mirror's byte budget as it arrives.
impl crate::message::tee::TeeSink for PrimarySink {
    fn budget(&self) -> Option<&Arc<Budget>> {
        Some(&self.budget)
    }

    /// A body too large to keep is still compared, by its length and hash.
    fn digests(&self) -> bool {
        true
    }

    /// Kept with the head: a gRPC answer's status is usually here.
    fn trailers(&mut self, trailers: &http::HeaderMap) {
        self.headers = std::mem::take(&mut self.headers).with_trailers(trailers);
    }

    fn finish(self, result: crate::message::tee::TeeResult) {
        let PrimarySink {
            slot,
            status,
            headers,
            started,
            budget: _,
        } = self;
        let answer = match result {
            // Charged as it was captured: this sink names the budget.
            crate::message::tee::TeeResult::Complete(body, held) => {
                debug_assert_eq!(held.bytes(), body.len(), "a primary capture is charged");
                let kept = super::budget::KeptBody {
                    body,
                    held,
                    truncated: false,
                    over_budget: false,
                    digest: None,
                    cut_short: false,
                };
                CapturedResponse::from_kept(status, headers, kept)
            }
            crate::message::tee::TeeResult::Digested {
                digest,
                over_budget,
            } => {
                let kept = super::budget::KeptBody {
                    body: Bytes::new(),
                    held: Held::nothing(),
                    truncated: !over_budget,
                    over_budget,
                    digest: Some(digest),
                    cut_short: false,
                };
                CapturedResponse::from_kept(status, headers, kept)
            }
            crate::message::tee::TeeResult::OverBudget => {
                CapturedResponse::over_budget(status, headers)
            }
            crate::message::tee::TeeResult::TooLarge
            | crate::message::tee::TeeResult::Incomplete(_) => {
                return slot.publish(None);
            }
        };
        slot.publish(Some(answer.with_latency(started.elapsed())));
    }
}
