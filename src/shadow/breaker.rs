//! A circuit breaker per shadow upstream: stop mirroring to a shadow that is failing, so a
//! broken build under test costs neither it nor us anything, and give it back its traffic in
//! proportion as it shows it has recovered.
//!
//! Closed: every request is admitted; outcomes are counted over fixed windows. When a window
//! holds at least `min_requests` and the share of errors and timeouts reaches `error_ratio`,
//! the breaker opens. Open: nothing is admitted for a cooldown. Half-open: the first request
//! goes alone, as a probe; once it succeeds, a share of the requests is admitted — one in
//! [`FIRST_PERIOD`] at first — and the share doubles each time `probes` admitted requests in
//! a row have succeeded, until it reaches every request and the breaker closes. Any failure
//! while half-open opens it again. The lone first probe keeps a shadow that still hangs from
//! tying up copies until their timeout at every cooldown's end, which is what lets the
//! cooldowns stay short. Shadow 5xx answers are *responses* (the comparison judges them), not failures; only
//! transport errors and timeouts count.
//!
//! Cooldowns back off only while failures continue: the first opening waits
//! `initial_cooldown`; each failed probe doubles it, up to `cooldown`. Recovery resets it,
//! unless the breaker opens again within one `window` of closing (a shadow that flaps is
//! still failing, so its backoff goes on). Why not a fixed cooldown: a shadow back after a
//! short outage would miss all its traffic for the whole cooldown; why not admit everything
//! at once: a shadow that is not back yet would get a full burst of copies that time out.
//!
//! Each admission carries the epoch (the count of open, half-open and closed transitions) it
//! was admitted in, and an outcome only counts in that same epoch: a request sent before the
//! breaker opened that finishes while it probes (possible when the cooldown is shorter than
//! the mirror timeout) says nothing about the shadow since then, and must not pass for a
//! probe. The share's steps within one half-open spell keep the epoch: every admission of
//! the spell probes the same recovery.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Half-open starts by admitting one request in this many; the period halves with each good
/// step, so the share doubles: 1/8, 1/4, 1/2, then closed (all).
pub const FIRST_PERIOD: u32 = 8;

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Length of one counting window.
    pub window: Duration,
    /// Fewer requests than this in a window never open the breaker.
    pub min_requests: u32,
    /// Failure share (0–1] at which the breaker opens.
    pub error_ratio: f64,
    /// The first cooldown of an outage.
    pub initial_cooldown: Duration,
    /// The longest cooldown: the backoff stops doubling here.
    pub cooldown: Duration,
    /// Successes in a row, while half-open, that double the share admitted.
    pub probes: u32,
    /// How long a lone first probe may take (the mirror timeout): past it, its outcome is
    /// taken to be lost and another request goes as the probe.
    pub probe_timeout: Duration,
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

/// A change of state, reported to the breaker's observer (for logs and the gauge).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    /// The new state.
    pub to: BreakerState,
    /// Opened: how long before probing. Otherwise zero.
    pub cooldown: Duration,
    /// Opened: the window's failures (or the one failed probe) and requests that opened it.
    pub failures: u32,
    /// See `failures`.
    pub requests: u32,
    /// Closed: how long the outage lasted, from opening to full mirroring again.
    pub outage: Duration,
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
        /// The first probe succeeded: admit by the share, not only that probe.
        confirmed: bool,
        /// When the lone probe was sent (until `confirmed`).
        probe_sent: Instant,
        /// One request in `period` is admitted.
        period: u32,
        /// Requests offered in this step (admitted or not).
        offered: u32,
        /// Successes in a row in this step.
        successes: u32,
    },
}

/// The state and what outlives one state: the epoch, the backoff, the outage's start.
#[derive(Debug)]
struct Guarded {
    state: Inner,
    epoch: u64,
    /// The cooldown of the last opening (the backoff doubles from it).
    cooldown: Duration,
    /// When the current outage began (the first opening since the breaker was closed).
    outage_start: Instant,
    /// When the breaker last closed after an outage (`None` before any).
    recovered_at: Option<Instant>,
}

/// Proof that [`Breaker::admit`] let a request through; hand it back to [`Breaker::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "record the outcome with Breaker::record"]
pub struct Admission {
    epoch: u64,
}

/// Told of every transition, after the breaker's lock is released.
pub type Observer = Box<dyn Fn(Transition) + Send + Sync>;

/// One shadow's breaker. Cheap: a mutex held for a few comparisons per mirrored request.
pub struct Breaker {
    config: BreakerConfig,
    inner: Mutex<Guarded>,
    observer: Option<Observer>,
}

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker")
            .field("config", &self.config)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Guarded {
    fn set(&mut self, state: Inner) {
        self.state = state;
        self.epoch += 1;
    }

    /// Opens for the next cooldown of the backoff: the first of an outage is
    /// `initial_cooldown`, each next one twice the last, at most `cooldown`.
    fn open(
        &mut self,
        config: &BreakerConfig,
        now: Instant,
        failures: u32,
        requests: u32,
    ) -> Transition {
        let continuing = match &self.state {
            Inner::HalfOpen { .. } => true,
            // Reopening soon after recovering: the same outage goes on.
            _ => self
                .recovered_at
                .is_some_and(|at| now.saturating_duration_since(at) < config.window),
        };
        let cooldown = if continuing {
            self.cooldown.saturating_mul(2).min(config.cooldown)
        } else {
            self.outage_start = now;
            config.initial_cooldown.min(config.cooldown)
        };
        self.cooldown = cooldown;
        self.set(Inner::Open {
            until: now + cooldown,
        });
        Transition {
            to: BreakerState::Open,
            cooldown,
            failures,
            requests,
            outage: Duration::ZERO,
        }
    }

    fn half_open(&mut self, now: Instant) -> Transition {
        self.set(Inner::HalfOpen {
            confirmed: false,
            probe_sent: now,
            period: FIRST_PERIOD,
            offered: 0,
            successes: 0,
        });
        Transition {
            to: BreakerState::HalfOpen,
            cooldown: Duration::ZERO,
            failures: 0,
            requests: 0,
            outage: Duration::ZERO,
        }
    }

    fn close(&mut self, now: Instant) -> Transition {
        self.recovered_at = Some(now);
        self.set(Inner::Closed {
            window_start: now,
            requests: 0,
            failures: 0,
        });
        Transition {
            to: BreakerState::Closed,
            cooldown: Duration::ZERO,
            failures: 0,
            requests: 0,
            outage: now.saturating_duration_since(self.outage_start),
        }
    }
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
                cooldown: config.initial_cooldown,
                outage_start: now,
                recovered_at: None,
            }),
            observer: None,
        }
    }

    /// The same breaker, telling `observer` of each transition.
    pub fn observed(mut self, observer: Observer) -> Breaker {
        self.observer = Some(observer);
        self
    }

    fn tell(&self, transition: Option<Transition>) {
        if let (Some(transition), Some(observer)) = (transition, &self.observer) {
            observer(transition);
        }
    }

    /// Whether a request may go to the shadow now (`Some`). Half-open, one request in the
    /// current period is admitted; each admitted request's [`Breaker::record`] moves the
    /// breaker on.
    pub fn admit(&self, now: Instant) -> Option<Admission> {
        let config = self.config;
        let (admitted, transition) = {
            let mut guarded = self.inner.lock().ok()?;
            let mut transition = None;
            if let Inner::Open { until } = guarded.state {
                if now >= until {
                    transition = Some(guarded.half_open(now));
                }
            }
            let admitted = match &mut guarded.state {
                Inner::Closed { .. } => true,
                Inner::Open { .. } => false,
                Inner::HalfOpen {
                    confirmed,
                    probe_sent,
                    period,
                    offered,
                    ..
                } => {
                    // The first request of each step goes, then one in `period`; until the
                    // first probe has succeeded, only it (or, once its time is up, another).
                    let admit = if *confirmed {
                        *offered % (*period).max(1) == 0
                    } else if *offered == 0
                        || now.saturating_duration_since(*probe_sent) >= config.probe_timeout
                    {
                        *probe_sent = now;
                        true
                    } else {
                        false
                    };
                    *offered = offered.wrapping_add(1);
                    admit
                }
            };
            let admission = admitted.then_some(Admission {
                epoch: guarded.epoch,
            });
            (admission, transition)
        };
        self.tell(transition);
        admitted
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
    /// last transition are ignored (see the module docs).
    pub fn record(&self, admission: Admission, success: bool, now: Instant) {
        let transition = {
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
                    if now.saturating_duration_since(*window_start) >= config.window {
                        *window_start = now;
                        *requests = 0;
                        *failures = 0;
                    }
                    *requests = requests.saturating_add(1);
                    *failures = failures.saturating_add(u32::from(!success));
                    let (failures, requests) = (*failures, *requests);
                    (requests >= config.min_requests
                        && f64::from(failures) >= config.error_ratio * f64::from(requests))
                    .then(|| guarded.open(&config, now, failures, requests))
                }
                Inner::Open { .. } => None,
                Inner::HalfOpen {
                    confirmed,
                    period,
                    offered,
                    successes,
                    ..
                } => {
                    if success {
                        *confirmed = true;
                    }
                    if !success {
                        Some(guarded.open(&config, now, 1, 1))
                    } else {
                        *successes = successes.saturating_add(1);
                        if *successes < config.probes {
                            None
                        } else if *period <= 2 {
                            Some(guarded.close(now))
                        } else {
                            // A good step: twice the share, counted afresh.
                            *period /= 2;
                            *offered = 0;
                            *successes = 0;
                            None
                        }
                    }
                }
            }
        };
        self.tell(transition);
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

    /// The share of requests admitted now: 1 closed, 0 open, 1/period half-open (at most:
    /// until the first probe has succeeded, only it goes).
    pub fn share(&self) -> f64 {
        match self.inner.lock().as_deref().map(|guarded| &guarded.state) {
            Ok(Inner::Closed { .. }) => 1.0,
            Ok(Inner::HalfOpen { period, .. }) => 1.0 / f64::from((*period).max(1)),
            Ok(Inner::Open { .. }) | Err(_) => 0.0,
        }
    }

    /// The cooldown of the last opening.
    pub fn cooldown(&self) -> Duration {
        self.inner
            .lock()
            .map_or(self.config.cooldown, |guarded| guarded.cooldown)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
