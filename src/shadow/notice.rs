//! Operator notices from the mirror side: shadow failures and dropped copies, logged at WARN
//! (a client that gave up mid-body at INFO), at most one line per shadow and reason every
//! [`INTERVAL`].
//!
//! Why rate-limited: a dead shadow fails every mirrored request, and a full queue drops every
//! copy; a line per event would flood the log and cost the live path (drops are decided
//! there). Each event costs an atomic load and, when not logged, one atomic add; the line
//! that is logged carries `events`, how many events it stands for, so the counts add up.
//! Events suppressed after the last line are reported by [`Notices::flush`], which the
//! shadow's dispatcher runs every interval, so a burst that ends is still accounted for.

use crate::telemetry::MirrorOutcome;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// At most one line per shadow and reason this often.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// Nanoseconds since the first call (a monotonic clock that fits an atomic).
pub fn clock() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// One reason's limiter: when the next line may be logged, and the events not logged since
/// the last line.
#[derive(Debug, Default)]
pub struct Limiter {
    next: AtomicU64,
    suppressed: AtomicU64,
}

impl Limiter {
    /// An event at `now` (see [`clock`]): `Some(events)` when it is to be logged, standing
    /// for itself and the events suppressed before it; `None` when it is counted instead.
    pub fn hit(&self, now: u64, interval: Duration) -> Option<u64> {
        if self.take_turn(now, interval) {
            Some(self.suppressed.swap(0, Ordering::Relaxed).saturating_add(1))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// The events suppressed since the last line, once its interval is over (`None` when
    /// there are none, or it is not over).
    pub fn flush(&self, now: u64, interval: Duration) -> Option<u64> {
        if self.suppressed.load(Ordering::Relaxed) == 0 || !self.take_turn(now, interval) {
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::Relaxed)).filter(|events| *events > 0)
    }

    /// Claims the right to log at `now`; one caller wins per interval.
    fn take_turn(&self, now: u64, interval: Duration) -> bool {
        let next = self.next.load(Ordering::Relaxed);
        let after = now.saturating_add(u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX));
        now >= next
            && self
                .next
                .compare_exchange(next, after, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// The outcomes that are noticed, in limiter order.
const NOTICED: [MirrorOutcome; 7] = [
    MirrorOutcome::Error,
    MirrorOutcome::Timeout,
    MirrorOutcome::DroppedQueueFull,
    MirrorOutcome::DroppedBodyTooLarge,
    MirrorOutcome::DroppedClientAborted,
    MirrorOutcome::DroppedPrimaryFailed,
    MirrorOutcome::DroppedMemoryBudget,
];

/// One shadow's notices, a limiter per reason.
#[derive(Debug)]
pub struct Notices {
    shadow: Arc<str>,
    limiters: [Limiter; NOTICED.len()],
    interval: Duration,
}

impl Notices {
    /// Notices for `shadow`, at most one line per reason every `interval`.
    pub fn new(shadow: Arc<str>, interval: Duration) -> Notices {
        Notices {
            shadow,
            limiters: Default::default(),
            interval,
        }
    }

    /// An outcome of a request sampled for this shadow; failures and drops are logged,
    /// rate-limited, the rest ignored. `error` is the cause of an `error`, when known.
    pub fn outcome(&self, outcome: MirrorOutcome, error: Option<&dyn std::fmt::Display>) {
        let Some(limiter) = NOTICED
            .iter()
            .position(|noticed| *noticed == outcome)
            .and_then(|index| self.limiters.get(index))
        else {
            return;
        };
        if let Some(events) = limiter.hit(clock(), self.interval) {
            self.log(outcome, events, error);
        }
    }

    /// Logs what each reason suppressed since its last line, once its interval is over.
    pub fn flush(&self) {
        let now = clock();
        for (outcome, limiter) in NOTICED.iter().zip(&self.limiters) {
            if let Some(events) = limiter.flush(now, self.interval) {
                self.log(*outcome, events, None);
            }
        }
    }

    fn log(&self, outcome: MirrorOutcome, events: u64, error: Option<&dyn std::fmt::Display>) {
        let shadow = &*self.shadow;
        let reason = outcome.as_str();
        let interval_s = self.interval.as_secs();
        // One event shape per reason: the message says what happened, `events` how often
        // since the last line (at most one per `interval_s`).
        match outcome {
            MirrorOutcome::Error => match error {
                Some(error) => tracing::warn!(
                    shadow,
                    reason,
                    events,
                    interval_s,
                    error = %error,
                    "shadow request failed"
                ),
                None => {
                    tracing::warn!(shadow, reason, events, interval_s, "shadow request failed")
                }
            },
            MirrorOutcome::Timeout => tracing::warn!(
                shadow,
                reason,
                events,
                interval_s,
                "shadow request timed out (mirror.timeout)"
            ),
            MirrorOutcome::DroppedQueueFull => tracing::warn!(
                shadow,
                reason,
                events,
                interval_s,
                "mirror copy dropped: the shadow's queue is full (mirror.queue_capacity)"
            ),
            MirrorOutcome::DroppedBodyTooLarge => tracing::warn!(
                shadow,
                reason,
                events,
                interval_s,
                "mirror copy dropped: the request body is over the route's max_body_bytes"
            ),
            MirrorOutcome::DroppedMemoryBudget => tracing::warn!(
                shadow,
                reason,
                events,
                interval_s,
                "mirror copy dropped: the request body did not fit mirror.max_buffered_bytes"
            ),
            MirrorOutcome::DroppedClientAborted => tracing::info!(
                shadow,
                reason,
                events,
                interval_s,
                "mirror copy dropped: the client left before its request body was whole"
            ),
            // The primary's failure is logged (and counted) by the live path already.
            MirrorOutcome::DroppedPrimaryFailed => tracing::info!(
                shadow,
                reason,
                events,
                interval_s,
                "mirror copy dropped: the primary failed or answered before the request body was whole"
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn one_line_per_interval_and_every_event_accounted_for() {
        let limiter = Limiter::default();
        let interval = Duration::from_secs(5);
        let mut logged = Vec::new();
        // A burst of 1,000 events over 12 s, then a flush after the last interval.
        for i in 0..1_000u64 {
            let now = SECOND + i * 12 * SECOND / 1_000;
            if let Some(events) = limiter.hit(now, interval) {
                logged.push(events);
            }
            assert_eq!(
                limiter.flush(now, interval),
                None,
                "never before the interval"
            );
        }
        let after = SECOND + 13 * SECOND;
        assert_eq!(logged.len(), 3, "at 0 s, 5 s, 10 s: {logged:?}");
        logged.extend(limiter.flush(after + 5 * SECOND, interval));
        assert_eq!(logged.iter().sum::<u64>(), 1_000, "{logged:?}");
        assert_eq!(logged.first(), Some(&1));
        assert_eq!(
            limiter.flush(after + 20 * SECOND, interval),
            None,
            "nothing left"
        );
    }

    #[test]
    fn concurrent_events_are_counted_exactly() {
        let limiter = Arc::new(Limiter::default());
        let logged = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let limiter = limiter.clone();
                let logged = logged.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        if let Some(events) = limiter.hit(i * 1_000, Duration::from_micros(100)) {
                            logged.fetch_add(events, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let rest = limiter.flush(u64::MAX / 2, Duration::ZERO).unwrap_or(0);
        assert_eq!(logged.load(Ordering::Relaxed) + rest, 40_000);
    }
}
