//! One byte budget for every body the mirror side holds (`mirror.max_buffered_bytes`).
//!
//! Why: the queues and the in-flight cap bound how *many* copies, answers and pairs wait,
//! not how large they are. With the default counts and 1 MiB bodies that would be
//! gigabytes, and a proxy killed for its memory takes the live traffic down with it. So each
//! body kept for later — a captured request body, the primary's and the shadows' answers —
//! holds its size against one budget from the moment it is kept until the last reference to
//! it is gone (the pair was compared, or dropped). What does not fit is not kept, and is
//! counted where it was turned away.

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

    /// Holds `bytes` until the returned [`Held`] is dropped; `None` when they do not fit.
    /// Nothing is held (and nothing shared is touched) for zero bytes.
    pub fn try_hold(self: &Arc<Self>, bytes: usize) -> Option<Held> {
        if bytes == 0 {
            return Some(Held::nothing());
        }
        let limit = self.limit;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= limit)
            })
            .ok()?;
        self.gauge.increment(bytes as f64);
        Some(Held {
            budget: Some(self.clone()),
            bytes,
        })
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn budget(limit: usize) -> Arc<Budget> {
        Budget::new(limit, Gauge::noop())
    }

    #[test]
    fn holds_up_to_the_limit_and_gives_back_on_drop() {
        let budget = budget(100);
        let a = budget.try_hold(60).unwrap();
        assert!(budget.try_hold(41).is_none(), "60 + 41 is over 100");
        let b = budget.try_hold(40).unwrap();
        assert_eq!(budget.used(), 100);
        assert!(budget.try_hold(1).is_none());
        drop(a);
        assert_eq!(budget.used(), 40);
        let c = budget.try_hold(60).unwrap();
        drop((b, c));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn zero_bytes_always_fit_and_a_clone_gives_nothing_back() {
        let budget = budget(10);
        let full = budget.try_hold(10).unwrap();
        let empty = budget.try_hold(0).unwrap();
        assert_eq!(budget.used(), 10);
        let copy = full.clone();
        drop(copy);
        assert_eq!(budget.used(), 10, "the clone held nothing");
        drop((empty, full));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_body_larger_than_the_whole_budget_never_fits() {
        let budget = budget(10);
        assert!(budget.try_hold(11).is_none());
        assert!(budget.try_hold(usize::MAX).is_none(), "no overflow");
        assert_eq!(budget.used(), 0);
    }
}
