//! A circuit breaker per shadow upstream: stop mirroring to a shadow that is failing, so a
//! broken build under test costs neither it nor us anything, then probe until it recovers.
//!
//! Closed: every request is admitted; outcomes are counted over fixed windows. When a window
//! holds at least `min_requests` and the share of errors and timeouts reaches `error_ratio`,
//! the breaker opens. Open: nothing is admitted for `cooldown`. Half-open: up to
//! `probes` requests are admitted one at a time; if all succeed the breaker closes, and any
//! failure opens it again. Shadow 5xx answers are *responses* (the comparison judges them),
//! not failures; only transport errors and timeouts count.
//!
//! Each admission carries the epoch (the count of state changes) it was admitted in, and
//! an outcome only counts in that same epoch: a request sent before the breaker opened
//! that finishes while it probes (possible when the cooldown is shorter than the mirror
//! timeout) says nothing about the shadow since then, and must not pass for a probe.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Length of one counting window.
    pub window: Duration,
    /// Fewer requests than this in a window never open the breaker.
    pub min_requests: u32,
    /// Failure share (0–1] at which the breaker opens.
    pub error_ratio: f64,
    /// How long the breaker stays open before probing.
    pub cooldown: Duration,
    /// Successful probes needed to close again.
    pub probes: u32,
}

/// The breaker's state, as exported in the `shadowtap_mirror_circuit_state` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Mirroring normally (gauge 0).
    Closed,
    /// Mirroring paused (gauge 1).
    Open,
    /// Probing whether the shadow recovered (gauge 2).
    HalfOpen,
}

impl BreakerState {
    /// The gauge value.
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }
}

#[derive(Debug)]
enum Inner {
    Closed {
        window_start: Instant,
        requests: u32,
        failures: u32,
    },
    Open {
        until: Instant,
    },
    HalfOpen {
        in_flight: bool,
        successes: u32,
    },
}

/// The state and how many times it has changed.
#[derive(Debug)]
struct Guarded {
    state: Inner,
    epoch: u64,
}

impl Guarded {
    fn set(&mut self, state: Inner) {
        self.state = state;
        self.epoch += 1;
    }
}

/// Proof that [`Breaker::admit`] let a request through; hand it back to [`Breaker::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "record the outcome with Breaker::record"]
pub struct Admission {
    epoch: u64,
}

/// One shadow's breaker. Cheap: a mutex held for a few comparisons per mirrored request.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    inner: Mutex<Guarded>,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig, now: Instant) -> Breaker {
        Breaker {
            config,
            inner: Mutex::new(Guarded {
                state: Inner::Closed {
                    window_start: now,
                    requests: 0,
                    failures: 0,
                },
                epoch: 0,
            }),
        }
    }

    /// Whether a request may go to the shadow now (`Some`). In half-open state at most one
    /// probe is in flight; its [`Breaker::record`] decides what happens next.
    pub fn admit(&self, now: Instant) -> Option<Admission> {
        let mut guarded = self.inner.lock().ok()?;
        let admitted = match &mut guarded.state {
            Inner::Closed { .. } => true,
            Inner::Open { until } => {
                if now >= *until {
                    guarded.set(Inner::HalfOpen {
                        in_flight: true,
                        successes: 0,
                    });
                    true
                } else {
                    false
                }
            }
            Inner::HalfOpen { in_flight, .. } => {
                if *in_flight {
                    false
                } else {
                    *in_flight = true;
                    true
                }
            }
        };
        admitted.then_some(Admission {
            epoch: guarded.epoch,
        })
    }

    /// A cheap look, without admitting anything: is the breaker open and still cooling down?
    /// Used when sampling so an open shadow costs no body copy or queue slot.
    pub fn is_open(&self, now: Instant) -> bool {
        match self.inner.lock().as_deref() {
            Ok(Guarded {
                state: Inner::Open { until },
                ..
            }) => now < *until,
            Ok(_) => false,
            Err(_) => true,
        }
    }

    /// Records the outcome of an admitted request. Outcomes of requests admitted before the
    /// last state change are ignored (see the module docs).
    pub fn record(&self, admission: Admission, success: bool, now: Instant) {
        let Ok(mut guarded) = self.inner.lock() else {
            return;
        };
        if admission.epoch != guarded.epoch {
            return;
        }
        let config = self.config;
        match &mut guarded.state {
            Inner::Closed {
                window_start,
                requests,
                failures,
            } => {
                if now.duration_since(*window_start) >= config.window {
                    *window_start = now;
                    *requests = 0;
                    *failures = 0;
                }
                *requests += 1;
                *failures += u32::from(!success);
                if *requests >= config.min_requests
                    && f64::from(*failures) >= config.error_ratio * f64::from(*requests)
                {
                    guarded.set(Inner::Open {
                        until: now + config.cooldown,
                    });
                }
            }
            Inner::Open { .. } => {}
            Inner::HalfOpen {
                in_flight,
                successes,
            } => {
                *in_flight = false;
                if !success {
                    guarded.set(Inner::Open {
                        until: now + config.cooldown,
                    });
                } else {
                    *successes += 1;
                    if *successes >= config.probes {
                        guarded.set(Inner::Closed {
                            window_start: now,
                            requests: 0,
                            failures: 0,
                        });
                    }
                }
            }
        }
    }

    /// The current state (for the gauge and the admin API).
    pub fn state(&self) -> BreakerState {
        match self.inner.lock().as_deref().map(|guarded| &guarded.state) {
            Ok(Inner::Closed { .. }) => BreakerState::Closed,
            Ok(Inner::Open { .. }) => BreakerState::Open,
            Ok(Inner::HalfOpen { .. }) => BreakerState::HalfOpen,
            Err(_) => BreakerState::Open,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Admits a request (it must be let through) and records its outcome at once.
    fn run(breaker: &Breaker, success: bool, now: Instant) {
        let admission = breaker.admit(now).expect("admitted");
        breaker.record(admission, success, now);
    }

    fn config() -> BreakerConfig {
        BreakerConfig {
            window: Duration::from_secs(10),
            min_requests: 10,
            error_ratio: 0.5,
            cooldown: Duration::from_secs(5),
            probes: 3,
        }
    }

    #[test]
    fn opens_on_failures_probes_after_cooldown_and_closes_on_success() {
        let t0 = Instant::now();
        let breaker = Breaker::new(config(), t0);
        for i in 0..9 {
            run(&breaker, i % 3 == 0, t0);
        }
        // 9 requests: below min_requests, stays closed despite 6 failures.
        assert_eq!(breaker.state(), BreakerState::Closed);
        run(&breaker, false, t0);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(breaker.admit(t0 + Duration::from_secs(4)).is_none());

        let t1 = t0 + Duration::from_secs(5);
        let probe = breaker.admit(t1).expect("first probe after cooldown");
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(breaker.admit(t1).is_none(), "one probe at a time");
        breaker.record(probe, true, t1);
        for _ in 0..2 {
            run(&breaker, true, t1);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn a_failed_probe_reopens() {
        let t0 = Instant::now();
        let breaker = Breaker::new(config(), t0);
        for _ in 0..10 {
            run(&breaker, false, t0);
        }
        let t1 = t0 + Duration::from_secs(6);
        run(&breaker, false, t1);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(breaker.admit(t1 + Duration::from_secs(1)).is_none());
    }

    #[test]
    fn failures_in_an_old_window_are_forgotten() {
        let t0 = Instant::now();
        let breaker = Breaker::new(config(), t0);
        for _ in 0..4 {
            run(&breaker, false, t0);
        }
        let later = t0 + Duration::from_secs(11);
        for _ in 0..10 {
            run(&breaker, true, later);
        }
        run(&breaker, false, later);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn a_request_sent_before_the_breaker_opened_is_not_taken_for_a_probe() {
        let t0 = Instant::now();
        let breaker = Breaker::new(config(), t0);
        // Sent while closed, and still in flight when the breaker opens.
        let slow = breaker.admit(t0).expect("admitted while closed");
        for _ in 0..10 {
            run(&breaker, false, t0);
        }
        assert_eq!(breaker.state(), BreakerState::Open);

        let t1 = t0 + Duration::from_secs(5);
        let probe = breaker.admit(t1).expect("first probe");
        // The old request times out now: it says nothing about the shadow since the
        // cooldown, so it neither reopens the breaker nor frees the probe's turn.
        breaker.record(slow, false, t1);
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(breaker.admit(t1).is_none(), "the probe is still in flight");
        breaker.record(probe, true, t1);
        for _ in 0..2 {
            run(&breaker, true, t1);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}
