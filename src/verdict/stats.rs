//! Honest statistics: a ratio is judged by its 95 % Wilson score interval, never by the
//! point estimate, so a handful of pairs cannot pass (or fail) a canary by luck.
//!
//! Wilson rather than the normal ("Wald") interval: it stays inside [0, 1] and keeps its
//! coverage at 0 or n successes and for small n, exactly where a canary starts.

use serde::Serialize;

/// The normal quantile of a two-sided 95 % interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// A confidence interval of a proportion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

/// The 95 % Wilson score interval of `successes` in `trials`; `[0, 1]` (knowing nothing)
/// when there are no trials. `successes` above `trials` is read as `trials`.
pub fn wilson(successes: u64, trials: u64) -> Interval {
    if trials == 0 {
        return Interval {
            lower: 0.0,
            upper: 1.0,
        };
    }
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z2 = Z_95 * Z_95;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = Z_95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    // At 0 or n successes the bound is exactly 0 or 1; the float sum is only close to it,
    // and a lower bound of 1e-19 must not fail a threshold of 0.
    Interval {
        lower: if successes == 0 {
            0.0
        } else {
            (centre - half).max(0.0)
        },
        upper: if successes >= trials {
            1.0
        } else {
            (centre + half).min(1.0)
        },
    }
}

/// What the evidence says about one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Within the threshold with 95 % confidence.
    Pass,
    /// Not enough evidence either way.
    Inconclusive,
    /// Over the threshold with 95 % confidence.
    Fail,
}

impl Decision {
    /// The word shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Pass => "PASS",
            Decision::Inconclusive => "INCONCLUSIVE",
            Decision::Fail => "FAIL",
        }
    }
}

/// The rule of issue 21: fewer than `min_trials` is inconclusive; otherwise pass when the
/// interval's upper bound is at or under `max_ratio`, fail when its lower bound is over it,
/// and inconclusive when the interval straddles it.
pub fn decide(successes: u64, trials: u64, max_ratio: f64, min_trials: u64) -> Decision {
    if trials < min_trials || trials == 0 {
        return Decision::Inconclusive;
    }
    let interval = wilson(successes, trials);
    if interval.upper <= max_ratio {
        Decision::Pass
    } else if interval.lower > max_ratio {
        Decision::Fail
    } else {
        Decision::Inconclusive
    }
}

#[cfg(test)]
#[path = "stats_tests.rs"]
mod tests;
