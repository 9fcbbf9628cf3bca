//! The breaker's state machine, driven with explicit instants (no clock, no sleeping): the
//! examples first, then properties over random sequences of offers, outcomes and time.

use super::*;
use proptest::prelude::*;

const MS: Duration = Duration::from_millis(1);

fn config() -> BreakerConfig {
    BreakerConfig {
        window: Duration::from_secs(10),
        min_requests: 10,
        error_ratio: 0.5,
        initial_cooldown: Duration::from_secs(1),
        cooldown: Duration::from_secs(8),
        probes: 3,
        probe_timeout: Duration::from_secs(5),
    }
}

/// Admits a request (it must be let through) and records its outcome at once.
fn run(breaker: &Breaker, success: bool, now: Instant) {
    let admission = breaker.admit(now).expect("admitted");
    breaker.record(admission, success, now);
}

/// Opens a closed breaker with `min_requests` failures at `now`.
fn open(breaker: &Breaker, now: Instant) {
    for _ in 0..config().min_requests {
        run(breaker, false, now);
    }
    assert_eq!(breaker.state(), BreakerState::Open);
}

/// Offers requests at `now` until `n` have been admitted and succeeded; how many were offered.
fn succeed(breaker: &Breaker, n: u32, now: Instant) -> u32 {
    let mut offered = 0;
    let mut done = 0;
    while done < n {
        offered += 1;
        if let Some(admission) = breaker.admit(now) {
            breaker.record(admission, true, now);
            done += 1;
        }
    }
    offered
}

#[test]
fn opens_on_failures_then_admits_a_doubling_share_until_closed() {
    let t0 = Instant::now();
    let breaker = Breaker::new(config(), t0);
    for i in 0..9 {
        run(&breaker, i % 3 == 0, t0);
    }
    // 9 requests: below min_requests, stays closed despite 6 failures.
    assert_eq!(breaker.state(), BreakerState::Closed);
    run(&breaker, false, t0);
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(
        breaker.cooldown(),
        Duration::from_secs(1),
        "a short first cooldown"
    );
    assert!(breaker.admit(t0 + 999 * MS).is_none());

    // Half-open: the first request goes at once, then one in 8.
    let t1 = t0 + Duration::from_secs(1);
    let probe = breaker.admit(t1).expect("first probe after the cooldown");
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert_eq!(breaker.share(), 1.0 / 8.0);
    for _ in 0..7 {
        assert!(breaker.admit(t1).is_none());
    }
    breaker.record(probe, true, t1);
    // Two more successes at one in 8 (the 8th offer after the first goes), then 1/4, 1/2.
    assert_eq!(succeed(&breaker, 2, t1), 9);
    assert_eq!(breaker.share(), 1.0 / 4.0);
    assert_eq!(succeed(&breaker, 3, t1), 9);
    assert_eq!(breaker.share(), 1.0 / 2.0);
    assert_eq!(succeed(&breaker, 3, t1), 5);
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.share(), 1.0);
}

#[test]
fn until_the_first_probe_succeeds_it_goes_alone() {
    let t0 = Instant::now();
    let breaker = Breaker::new(config(), t0);
    open(&breaker, t0);
    let t1 = t0 + Duration::from_secs(1);
    let probe = breaker.admit(t1).expect("the first probe");
    // A shadow that still hangs holds one copy, not one in eight, until the probe times out.
    for _ in 0..100 {
        assert!(breaker.admit(t1 + config().probe_timeout - MS).is_none());
    }
    breaker.record(probe, true, t1);
    // 101 offered so far: the next admitted is at 104 (one in 8, counted from the first).
    assert_eq!(succeed(&breaker, 1, t1), 4);
    assert_eq!(succeed(&breaker, 1, t1), 8);
    assert_eq!(breaker.share(), 1.0 / 4.0);
}

#[test]
fn a_lone_probe_whose_outcome_never_comes_is_replaced_after_the_probe_timeout() {
    let t0 = Instant::now();
    let breaker = Breaker::new(config(), t0);
    open(&breaker, t0);
    let t1 = t0 + Duration::from_secs(1);
    let _lost = breaker.admit(t1).expect("the first probe");
    assert!(breaker.admit(t1 + Duration::from_secs(4)).is_none());
    let t2 = t1 + Duration::from_secs(5);
    let probe = breaker
        .admit(t2)
        .expect("a new probe once the first one's time is up");
    assert!(breaker.admit(t2).is_none(), "still one at a time");
    breaker.record(probe, true, t2);
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
}

#[test]
fn failed_probes_double_the_cooldown_up_to_the_max() {
    let t0 = Instant::now();
    let breaker = Breaker::new(config(), t0);
    open(&breaker, t0);
    let mut now = t0;
    let mut seen = Vec::new();
    for _ in 0..6 {
        let cooldown = breaker.cooldown();
        seen.push(cooldown.as_secs());
        assert!(
            breaker.admit(now + cooldown - MS).is_none(),
            "still cooling down"
        );
        now += cooldown;
        run(&breaker, false, now);
        assert_eq!(breaker.state(), BreakerState::Open);
    }
    seen.push(breaker.cooldown().as_secs());
    assert_eq!(seen, [1, 2, 4, 8, 8, 8, 8]);
}

#[test]
fn a_failure_at_any_step_of_half_open_reopens() {
    let t0 = Instant::now();
    let breaker = Breaker::new(config(), t0);
    open(&breaker, t0);
    let t1 = t0 + Duration::from_secs(1);
    succeed(&breaker, 3 + 3, t1);
    assert_eq!(breaker.share(), 1.0 / 2.0);
    run(&breaker, false, t1);
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(breaker.cooldown(), Duration::from_secs(2));
}

#[test]
fn recovery_resets_the_backoff_unless_the_shadow_fails_again_at_once() {
    let t0 = Instant::now();
    let breaker = Breaker::new(config(), t0);
    open(&breaker, t0);
    let mut now = t0 + Duration::from_secs(1);
    run(&breaker, false, now);
    now += Duration::from_secs(2);
    // Three steps of three probes: offers 0, 8, 16 at 1/8; 0, 4, 8 at 1/4; 0, 2, 4 at 1/2.
    assert_eq!(succeed(&breaker, 9, now), 17 + 9 + 5, "to closed");
    assert_eq!(breaker.state(), BreakerState::Closed);

    // Failing again within a window of recovering: the same outage, the backoff goes on.
    open(&breaker, now + Duration::from_secs(5));
    assert_eq!(breaker.cooldown(), Duration::from_secs(4));

    // Recovered, then a new outage a window later: it starts short again.
    now += Duration::from_secs(5 + 4);
    succeed(&breaker, 9, now);
    assert_eq!(breaker.state(), BreakerState::Closed);
    open(&breaker, now + Duration::from_secs(11));
    assert_eq!(breaker.cooldown(), Duration::from_secs(1));
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
    open(&breaker, t0);

    let t1 = t0 + Duration::from_secs(1);
    let probe = breaker.admit(t1).expect("first probe");
    // The old request times out now: it says nothing about the shadow since the
    // cooldown, so it does not reopen the breaker.
    breaker.record(slow, false, t1);
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    breaker.record(probe, true, t1);
    succeed(&breaker, 8, t1);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[test]
fn every_transition_is_told_once_with_its_cooldown_and_outage() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let t0 = Instant::now();
    let breaker = Breaker::new(config(), t0).observed(Box::new(move |transition| {
        log.lock().unwrap().push(transition);
    }));
    open(&breaker, t0);
    let t1 = t0 + Duration::from_secs(1);
    succeed(&breaker, 9, t1);
    let seen = seen.lock().unwrap();
    let states: Vec<BreakerState> = seen.iter().map(|t| t.to).collect();
    assert_eq!(
        states,
        [
            BreakerState::Open,
            BreakerState::HalfOpen,
            BreakerState::Closed
        ]
    );
    assert_eq!(seen[0].cooldown, Duration::from_secs(1));
    assert_eq!((seen[0].failures, seen[0].requests), (10, 10));
    assert_eq!(seen[2].outage, Duration::from_secs(1));
}

/// One step of a random run.
#[derive(Debug, Clone)]
enum Op {
    /// Time passes.
    Wait(u64),
    /// A request is offered; when admitted, its outcome comes at once or later.
    Offer { success: bool, later: bool },
    /// The oldest pending outcome comes in.
    Complete,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..3_000).prop_map(Op::Wait),
        (any::<bool>(), any::<bool>()).prop_map(|(success, later)| Op::Offer { success, later }),
        Just(Op::Complete),
    ]
}

fn random_config() -> impl Strategy<Value = BreakerConfig> {
    (
        1u64..20,
        1u32..10,
        1u32..=10,
        1u64..2_000,
        1u64..20,
        1u32..6,
        1u64..10_000,
    )
        .prop_map(
            |(window, min_requests, tenths, initial, max_factor, probes, probe_timeout)| {
                BreakerConfig {
                    window: Duration::from_secs(window),
                    min_requests,
                    error_ratio: f64::from(tenths) / 10.0,
                    initial_cooldown: Duration::from_millis(initial),
                    cooldown: Duration::from_millis(initial * max_factor),
                    probes,
                    probe_timeout: Duration::from_millis(probe_timeout),
                }
            },
        )
}

/// Runs `ops`, checking the invariants after each; returns the final instant.
fn check_run(config: BreakerConfig, ops: &[Op], t0: Instant) -> Result<Instant, TestCaseError> {
    let openings = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = openings.clone();
    let breaker = Breaker::new(config, t0).observed(Box::new(move |transition| {
        log.lock().unwrap().push(transition);
    }));
    let mut now = t0;
    let mut pending = std::collections::VecDeque::new();
    // The share of the current half-open step, and its offers and admissions so far.
    let (mut step, mut offered, mut admitted) = (None, 0u32, 0u32);
    for op in ops {
        // A request's outcome always comes within the mirror timeout (the probe timeout):
        // whatever is still pending then times out, a failure.
        while let Some((admission, _, _)) = pending
            .front()
            .filter(|(_, _, at)| now.saturating_duration_since(*at) >= config.probe_timeout)
        {
            breaker.record(*admission, false, now);
            pending.pop_front();
        }
        match op {
            Op::Wait(ms) => now += Duration::from_millis(*ms),
            Op::Offer { success, later } => {
                let admission = breaker.admit(now);
                let half_open = breaker.state() == BreakerState::HalfOpen;
                if half_open && step != Some(breaker.share()) {
                    (step, offered, admitted) = (Some(breaker.share()), 0, 0);
                }
                offered += 1;
                if let Some(admission) = admission {
                    admitted += 1;
                    if *later {
                        pending.push_back((admission, *success, now));
                    } else {
                        breaker.record(admission, *success, now);
                    }
                }
                if let (true, Some(share)) = (half_open, step) {
                    // Never more than the share: one in `period`, the first at once.
                    let period = (1.0 / share).round() as u32;
                    prop_assert!(
                        admitted <= offered.div_ceil(period),
                        "{admitted} of {offered} at 1/{period}"
                    );
                }
            }
            Op::Complete => {
                if let Some((admission, success, _)) = pending.pop_front() {
                    breaker.record(admission, success, now);
                }
            }
        }
        if breaker.state() != BreakerState::HalfOpen {
            step = None;
        }
        let share_now = breaker.share();
        prop_assert!((0.0..=1.0).contains(&share_now), "share {share_now}");
        match breaker.state() {
            BreakerState::Closed => prop_assert_eq!(share_now, 1.0),
            BreakerState::Open => prop_assert_eq!(share_now, 0.0),
            BreakerState::HalfOpen => prop_assert!(share_now > 0.0 && share_now < 1.0),
        }
        if breaker.state() == BreakerState::Closed && !breaker.is_open(now) {
            prop_assert!(breaker.admit(now).is_some(), "closed admits everything");
            // That admission is never recorded: an abandoned request (as a dropped job's).
        }
    }
    // Cooldowns: within [initial, max]; while failures continue (no close between two
    // openings) they never shrink; the first opening of an outage is the initial one.
    let transitions = openings.lock().unwrap();
    let mut last_open: Option<Duration> = None;
    for transition in transitions.iter() {
        match transition.to {
            BreakerState::Open => {
                let cooldown = transition.cooldown;
                prop_assert!(cooldown >= config.initial_cooldown.min(config.cooldown));
                prop_assert!(cooldown <= config.cooldown, "{cooldown:?} over the max");
                match last_open {
                    Some(last) => prop_assert!(cooldown >= last, "{cooldown:?} after {last:?}"),
                    None => prop_assert!(
                        cooldown == config.initial_cooldown || transitions.len() > 1,
                        "the first opening is the initial cooldown"
                    ),
                }
                last_open = Some(cooldown);
            }
            BreakerState::Closed => last_open = None,
            BreakerState::HalfOpen => {}
        }
    }
    drop(transitions);
    // From wherever the run left it: once the shadow is healthy, FIRST_PERIOD's halvings of
    // `probes` good probes each bring the share to 100 %.
    now += config.cooldown;
    let steps = FIRST_PERIOD.trailing_zeros();
    let mut good = 0;
    while breaker.state() != BreakerState::Closed {
        // Time passes between offers, so a lone probe whose outcome never came is replaced.
        now += config.probe_timeout / 16;
        if let Some(admission) = breaker.admit(now) {
            breaker.record(admission, true, now);
            good += 1;
        }
        prop_assert!(
            good <= steps * config.probes,
            "still {:?} after {good} good probes",
            breaker.state()
        );
    }
    prop_assert_eq!(breaker.share(), 1.0);
    Ok(now)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_runs_keep_the_invariants(config in random_config(), ops in proptest::collection::vec(op(), 0..200)) {
        check_run(config, &ops, Instant::now())?;
    }

    /// A shadow that fails every probe: each cooldown doubles the last, up to the max.
    #[test]
    fn while_failing_cooldowns_grow_but_never_past_the_max(config in random_config(), probes in 1usize..30) {
        let t0 = Instant::now();
        let breaker = Breaker::new(config, t0);
        let mut now = t0;
        while breaker.state() == BreakerState::Closed {
            run(&breaker, false, now);
        }
        let mut last = breaker.cooldown();
        prop_assert_eq!(last, config.initial_cooldown.min(config.cooldown));
        for _ in 0..probes {
            now += breaker.cooldown();
            run(&breaker, false, now);
            let cooldown = breaker.cooldown();
            prop_assert_eq!(cooldown, last.saturating_mul(2).min(config.cooldown));
            last = cooldown;
        }
    }
}
