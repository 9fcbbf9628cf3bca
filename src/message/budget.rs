//! One byte budget for every body the mirror side holds (`mirror.max_buffered_bytes`).
//!
//! Why: the queues and the in-flight cap bound how *many* copies, answers and pairs wait,
//! not how large they are. With the default counts and 1 MiB bodies that would be
//! gigabytes, and a proxy killed for its memory takes the live traffic down with it. So each
//! body kept for later — a captured request body, the primary's and the shadows' answers —
//! holds its size against one budget from the moment it is kept until the last reference to
//! it is gone (the pair was compared, or dropped). What does not fit is not kept, and is
//! counted where it was turned away.

use crate::digest::{BodyDigest, Digester};
use bytes::{Bytes, BytesMut};
use metrics::Gauge;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The budget: a limit and what is held against it now.
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
    /// `shadowtap_mirror_buffered_bytes`.
    gauge: Gauge,
}

impl Budget {
    /// A budget of `limit` bytes, reporting what is held on `gauge`.
    pub fn new(limit: usize, gauge: Gauge) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            used: AtomicUsize::new(0),
            gauge,
        })
    }

    /// The cap it was built with (a reload keeps a budget whose cap is unchanged).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Holds `bytes` until the returned [`Held`] is dropped; `None` when they do not fit.
    /// Nothing is held (and nothing shared is touched) for zero bytes.
    pub fn try_hold(self: &Arc<Self>, bytes: usize) -> Option<Held> {
        let mut held = Held::nothing();
        held.try_grow(self, bytes).then_some(held)
    }

    /// Counts `bytes` more as held, if they fit.
    fn reserve(&self, bytes: usize) -> bool {
        let limit = self.limit;
        let reserved = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= limit)
            })
            .is_ok();
        if reserved {
            self.gauge.increment(bytes as f64);
        }
        reserved
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// Bytes held against a [`Budget`], given back when this is dropped. Kept next to the body
/// it stands for, so the two go together.
pub struct Held {
    budget: Option<Arc<Budget>>,
    bytes: usize,
}

impl Held {
    /// Holds nothing (an empty body, or a value built outside the mirror, as in tests).
    pub fn nothing() -> Held {
        Held {
            budget: None,
            bytes: 0,
        }
    }

    /// Holds `bytes` more against `budget`, for a body kept as it arrives (a capture in
    /// progress holds what it has so far); `false`, and nothing changed, when they do not
    /// fit. One `Held` grows against one budget only. Zero bytes always fit.
    pub fn try_grow(&mut self, budget: &Arc<Budget>, bytes: usize) -> bool {
        if bytes == 0 {
            return true;
        }
        debug_assert!(
            self.budget
                .as_ref()
                .is_none_or(|own| Arc::ptr_eq(own, budget)),
            "a Held grows against one budget"
        );
        if !budget.reserve(bytes) {
            return false;
        }
        if self.budget.is_none() {
            self.budget = Some(budget.clone());
        }
        self.bytes += bytes;
        true
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Default for Held {
    fn default() -> Held {
        Held::nothing()
    }
}

/// A clone holds nothing: only the original gives its bytes back, once.
impl Clone for Held {
    fn clone(&self) -> Held {
        Held::nothing()
    }
}

/// Equal when they hold as many bytes (results carrying a `Held` compare by value in tests).
impl PartialEq for Held {
    fn eq(&self, other: &Held) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Held {}

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Held({} bytes)", self.bytes)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(budget) = self.budget.take() {
            budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
            budget.gauge.decrement(self.bytes as f64);
        }
    }
}

/// A body kept as it is read — a shadow's answer — up to a cap, its bytes held against a
/// budget as they come, so an answer being read is bounded by the budget like one kept.
/// Past the cap or the budget it keeps nothing and goes on as a [`Digester`] of the whole
/// body, so a body too large to keep is still compared by length and hash — until it is
/// longer than its [bound](Keeper::bounded_by), when reading on would settle nothing more.
pub struct Keeper<'a> {
    kept: BytesMut,
    cap: usize,
    budget: &'a Arc<Budget>,
    held: Held,
    truncated: bool,
    over_budget: bool,
    digest: Option<Digester>,
    bound: Option<&'a ReadBound>,
    cut_short: bool,
}

/// Past the cap, the length beyond which a body is not worth reading (`None`: not known yet).
pub type ReadBound = dyn Fn() -> Option<u64> + Sync;

/// What a [`Keeper`] kept.
pub struct KeptBody {
    /// The whole body; empty when `truncated` or `over_budget`.
    pub body: Bytes,
    /// What `body` holds against the budget.
    pub held: Held,
    /// The body was longer than the cap and was not kept (`digest` stands for it).
    pub truncated: bool,
    /// The body stopped fitting the budget and was not kept (`digest` stands for it).
    pub over_budget: bool,
    /// Length and hash of the whole body when it was not kept (of its first `len` bytes
    /// when `cut_short`).
    pub digest: Option<BodyDigest>,
    /// Reading stopped past the bound: the body is longer than its digest's `len`.
    pub cut_short: bool,
}

impl<'a> Keeper<'a> {
    /// Keeps at most `cap` bytes, held against `budget`.
    pub fn new(cap: usize, budget: &'a Arc<Budget>) -> Keeper<'a> {
        Keeper {
            kept: BytesMut::new(),
            cap,
            budget,
            held: Held::nothing(),
            truncated: false,
            over_budget: false,
            digest: None,
            bound: None,
            cut_short: false,
        }
    }

    /// Past the cap, stops reading once the body is longer than `bound` says is worth it (a
    /// shadow's answer longer than the primary's whole body differs whatever follows).
    pub fn bounded_by(self, bound: &'a ReadBound) -> Keeper<'a> {
        Keeper {
            bound: Some(bound),
            ..self
        }
    }

    /// Keeps `data` while the body fits the cap and the budget. Once it passes either, what
    /// was kept is hashed and given back, and this and every later piece is only hashed.
    /// `false` when reading on is not worth it (past the bound): the body is cut short.
    pub fn keep(&mut self, data: &[u8]) -> bool {
        if self.cut_short {
            return false;
        }
        match self.digest.as_mut() {
            Some(digester) => digester.update(data),
            None => {
                let fits_cap = self
                    .kept
                    .len()
                    .checked_add(data.len())
                    .is_some_and(|len| len <= self.cap);
                if fits_cap && self.held.try_grow(self.budget, data.len()) {
                    self.kept.extend_from_slice(data);
                    return true;
                }
                self.truncated = !fits_cap;
                self.over_budget = fits_cap;
                let mut digester = Digester::new();
                digester.update(&self.kept);
                digester.update(data);
                self.digest = Some(digester);
                self.kept = BytesMut::new();
                self.held = Held::nothing();
            }
        }
        let seen = self.digest.as_ref().map_or(0, Digester::bytes_seen);
        self.cut_short = self
            .bound
            .and_then(|bound| bound())
            .is_some_and(|bound| seen > bound);
        !self.cut_short
    }

    /// Whether reading stopped past the bound.
    pub fn cut_short(&self) -> bool {
        self.cut_short
    }

    /// The body and what it holds, or its digest, handed over (the keeper is left empty).
    pub fn finish(&mut self) -> KeptBody {
        KeptBody {
            body: self.kept.split().freeze(),
            held: std::mem::take(&mut self.held),
            truncated: self.truncated,
            over_budget: self.over_budget,
            digest: self.digest.take().map(|digester| digester.finish()),
            cut_short: self.cut_short,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "budget_tests.rs"]
mod tests;
