use super::*;
use proptest::prelude::*;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 5e-4
}

#[test]
fn wilson_matches_published_values() {
    // Reference values from the closed form, checked against R's `prop.test(correct = FALSE)`.
    let i = wilson(1, 3);
    assert!(close(i.lower, 0.0615) && close(i.upper, 0.7923), "{i:?}");
    let i = wilson(0, 300);
    assert!(close(i.lower, 0.0) && close(i.upper, 0.0126), "{i:?}");
    let i = wilson(10, 100);
    assert!(close(i.lower, 0.0552) && close(i.upper, 0.1744), "{i:?}");
    assert_eq!(
        wilson(0, 0),
        Interval {
            lower: 0.0,
            upper: 1.0
        }
    );
}

/// The issue's own examples, under the default thresholds (0.05, 100 pairs) and with the
/// pair minimum out of the way, so each row shows which rule decided.
#[test]
fn the_decision_table() {
    let rows: &[(u64, u64, f64, u64, Decision)] = &[
        // 1 divergence in 3 pairs: too few pairs, inconclusive rather than a fail.
        (1, 3, 0.05, 100, Decision::Inconclusive),
        // 0 in 3 is not a pass.
        (0, 3, 0.05, 100, Decision::Inconclusive),
        (0, 3, 0.05, 1, Decision::Inconclusive),
        // 0 in 300 passes.
        (0, 300, 0.05, 100, Decision::Pass),
        // Enough pairs, clearly over: fail.
        (45, 300, 0.05, 100, Decision::Fail),
        // Around the threshold: the interval straddles it.
        (15, 300, 0.05, 100, Decision::Inconclusive),
        // With the minimum out of the way, 1 in 3 is over 0.05 with 95 % confidence.
        (1, 3, 0.05, 1, Decision::Fail),
        // No trials at all never passes.
        (0, 0, 0.05, 0, Decision::Inconclusive),
        // Threshold 0: one divergence fails, none is never proven.
        (1, 1000, 0.0, 100, Decision::Fail),
        (0, 1000, 0.0, 100, Decision::Inconclusive),
    ];
    for &(successes, trials, max, min, expected) in rows {
        assert_eq!(
            decide(successes, trials, max, min),
            expected,
            "{successes}/{trials} against {max} (min {min})"
        );
    }
}

proptest! {
    /// The interval holds the point estimate, stays in [0, 1], and narrows as the trials grow.
    #[test]
    fn the_interval_is_sound(successes in 0u64..10_000, extra in 0u64..10_000) {
        let trials = successes + extra;
        prop_assume!(trials > 0);
        let i = wilson(successes, trials);
        let p = successes as f64 / trials as f64;
        prop_assert!(0.0 <= i.lower && i.lower <= p + 1e-12 && p <= i.upper + 1e-12 && i.upper <= 1.0);
        let wider = wilson(successes * 4, trials * 4);
        prop_assert!(wider.upper - wider.lower <= i.upper - i.lower + 1e-12);
    }

    /// The decision follows the interval exactly, and a pass and a fail never both hold.
    #[test]
    fn the_decision_follows_the_interval(
        successes in 0u64..2_000,
        extra in 0u64..2_000,
        max in 0.0f64..1.0,
        min in 0u64..500,
    ) {
        let trials = successes + extra;
        let decision = decide(successes, trials, max, min);
        let i = wilson(successes, trials);
        let expected = if trials < min || trials == 0 {
            Decision::Inconclusive
        } else if i.upper <= max {
            Decision::Pass
        } else if i.lower > max {
            Decision::Fail
        } else {
            Decision::Inconclusive
        };
        prop_assert_eq!(decision, expected);
        // More of the same evidence never turns a fail into a pass or back.
        if decision != Decision::Inconclusive {
            prop_assert_eq!(decide(successes * 4, trials * 4, max, min), decision);
        }
    }
}
