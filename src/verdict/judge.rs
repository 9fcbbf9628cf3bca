//! Evidence + thresholds -> a decision per (route, shadow) and for the whole run, with the
//! threshold that decided each and the numbers it was decided on.
//!
//! Each threshold is judged on its own evidence: the divergence ratio on compared pairs, the
//! shadow error ratio on shadow requests sent, the latency delta on its p99. A route fails
//! when any threshold fails, is inconclusive when none fails but one cannot be decided
//! yet, and passes only when every threshold passes.

use super::evidence::Evidence;
use super::stats::{decide, wilson, Decision, Interval};
use crate::config::Thresholds;
use serde::Serialize;

/// One threshold's judgement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// The threshold's config key (`max_divergence_ratio`, ...).
    pub threshold: &'static str,
    /// Its decision.
    pub decision: Decision,
    /// The evidence, in words: counts, interval and the limit.
    pub evidence: String,
    /// How close to the limit the evidence is (upper bound / limit); orders the passing
    /// checks so the closest one is named.
    #[serde(skip)]
    closeness: f64,
}

/// The verdict of one (route, shadow).
#[derive(Debug, Clone, Serialize)]
pub struct RouteVerdict {
    /// The decision.
    pub verdict: Decision,
    /// The check that decided it.
    pub decided_by: Check,
    /// Every check, in a fixed order.
    pub checks: Vec<Check>,
    /// The thresholds applied (the route's overrides over the defaults).
    pub thresholds: Thresholds,
    /// What the source found.
    pub evidence: Evidence,
    /// The divergence ratio's 95 % interval.
    pub divergence_interval: Interval,
    /// The shadow error ratio's 95 % interval.
    pub shadow_error_interval: Interval,
}

fn percent(ratio: f64) -> String {
    format!("{:.2}%", ratio * 100.0)
}

fn ratio_check(
    threshold: &'static str,
    what: &str,
    (count, total): (u64, u64),
    max: f64,
    min: u64,
) -> Check {
    let decision = decide(count, total, max, min);
    let interval = wilson(count, total);
    let bound = match decision {
        Decision::Pass => format!("upper bound at or under {}", percent(max)),
        Decision::Fail => format!("lower bound over {}", percent(max)),
        Decision::Inconclusive if total < min || total == 0 => {
            format!("fewer than min_pairs = {min}")
        }
        Decision::Inconclusive => format!("interval straddles {}", percent(max)),
    };
    Check {
        threshold,
        decision,
        evidence: format!(
            "{count}/{total} {what}, 95% CI [{}, {}]: {bound}",
            percent(interval.lower),
            percent(interval.upper)
        ),
        closeness: if max > 0.0 {
            interval.upper / max
        } else {
            f64::INFINITY
        },
    }
}

fn seconds(value: f64) -> String {
    format!("{:.1}ms", value * 1000.0)
}

/// The latency checks that have a threshold: a point comparison of the p99, judged only once
/// `min_pairs` pairs were compared.
fn latency_checks(evidence: &Evidence, thresholds: &Thresholds) -> Vec<Check> {
    let enough = evidence.pairs >= thresholds.min_pairs;
    let mut checks = Vec::new();
    let judge = |threshold, value: Option<f64>, limit: f64, shown: &dyn Fn(f64) -> String| {
        let (decision, evidence_text) = match value {
            _ if !enough => (
                Decision::Inconclusive,
                format!(
                    "{} pairs: fewer than min_pairs = {}",
                    evidence.pairs, thresholds.min_pairs
                ),
            ),
            None => (
                Decision::Inconclusive,
                "no latency data from the source".to_string(),
            ),
            Some(value) if value <= limit => (
                Decision::Pass,
                format!("p99 {} at or under {}", shown(value), shown(limit)),
            ),
            Some(value) => (
                Decision::Fail,
                format!("p99 {} over {}", shown(value), shown(limit)),
            ),
        };
        Check {
            threshold,
            decision,
            evidence: evidence_text,
            closeness: match value {
                Some(value) if limit > 0.0 => value / limit,
                _ => f64::INFINITY,
            },
        }
    };
    if let Some(limit) = thresholds.max_latency_delta {
        checks.push(judge(
            "max_latency_delta",
            evidence.latency_delta_p99_seconds,
            limit.as_secs_f64(),
            &seconds,
        ));
    }
    if let Some(limit) = thresholds.max_latency_delta_ratio {
        let ratio = match (
            evidence.latency_delta_p99_seconds,
            evidence.primary_p99_seconds,
        ) {
            (Some(delta), Some(primary)) if primary > 0.0 => Some(delta / primary),
            _ => None,
        };
        checks.push(judge("max_latency_delta_ratio", ratio, limit, &|ratio| {
            format!("{ratio:.2}x the primary's p99")
        }));
    }
    checks
}

/// Judges one (route, shadow).
pub fn judge(evidence: Evidence, thresholds: Thresholds) -> RouteVerdict {
    let mut checks = vec![
        ratio_check(
            "max_divergence_ratio",
            "pairs diverged",
            (evidence.diverged, evidence.pairs),
            thresholds.max_divergence_ratio,
            thresholds.min_pairs,
        ),
        ratio_check(
            "max_shadow_error_ratio",
            "shadow requests failed or timed out",
            (evidence.shadow_errors, evidence.shadow_requests),
            thresholds.max_shadow_error_ratio,
            thresholds.min_pairs,
        ),
    ];
    checks.extend(latency_checks(&evidence, &thresholds));
    let verdict = checks
        .iter()
        .map(|check| check.decision)
        .max()
        .unwrap_or(Decision::Inconclusive);
    // The first check with the verdict's decision; among passes, the one closest to its limit.
    let mut deciding = checks.iter().filter(|check| check.decision == verdict);
    let decided_by = match verdict {
        // Ties keep the earlier check (divergence before errors before latency).
        Decision::Pass => deciding.reduce(|best, check| {
            if check.closeness > best.closeness {
                check
            } else {
                best
            }
        }),
        _ => deciding.next(),
    }
    .or_else(|| checks.first())
    .cloned()
    .unwrap_or(Check {
        threshold: "min_pairs",
        decision: Decision::Inconclusive,
        evidence: "no checks".to_string(),
        closeness: f64::INFINITY,
    });
    RouteVerdict {
        verdict,
        decided_by,
        divergence_interval: wilson(evidence.diverged, evidence.pairs),
        shadow_error_interval: wilson(evidence.shadow_errors, evidence.shadow_requests),
        checks,
        thresholds,
        evidence,
    }
}

/// The verdict of the whole run: a fail anywhere fails it; otherwise anything undecided
/// leaves it inconclusive; it passes only when there were routes and every one passed.
pub fn overall(routes: &[RouteVerdict]) -> Decision {
    routes
        .iter()
        .map(|route| route.verdict)
        .max()
        .unwrap_or(Decision::Inconclusive)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn evidence(pairs: u64, diverged: u64, sent: u64, errors: u64) -> Evidence {
        Evidence {
            pairs,
            diverged,
            shadow_requests: sent,
            shadow_errors: errors,
            ..Evidence::new("/r", "canary")
        }
    }

    #[test]
    fn each_route_names_the_threshold_that_decided_it() {
        let defaults = Thresholds::default();
        let pass = judge(evidence(300, 0, 300, 0), defaults);
        assert_eq!(pass.verdict, Decision::Pass);
        let fail = judge(evidence(300, 45, 300, 0), defaults);
        assert_eq!(fail.verdict, Decision::Fail);
        assert_eq!(fail.decided_by.threshold, "max_divergence_ratio");
        assert!(fail.decided_by.evidence.starts_with("45/300"), "{fail:?}");
        // Every shadow request failed: no pairs at all, but the errors alone fail it.
        let errors = judge(evidence(0, 0, 200, 200), defaults);
        assert_eq!(errors.verdict, Decision::Fail);
        assert_eq!(errors.decided_by.threshold, "max_shadow_error_ratio");
        let few = judge(evidence(3, 1, 3, 0), defaults);
        assert_eq!(few.verdict, Decision::Inconclusive);
        assert!(few.decided_by.evidence.contains("min_pairs"), "{few:?}");
        assert_eq!(
            overall(&[pass.clone(), few.clone()]),
            Decision::Inconclusive
        );
        assert_eq!(overall(&[pass.clone(), few, fail]), Decision::Fail);
        assert_eq!(overall(&[pass]), Decision::Pass);
        assert_eq!(overall(&[]), Decision::Inconclusive);
    }

    #[test]
    fn latency_is_judged_only_with_a_threshold() {
        let slow = Evidence {
            latency_delta_p99_seconds: Some(0.040),
            primary_p99_seconds: Some(0.020),
            ..evidence(300, 0, 300, 0)
        };
        assert_eq!(
            judge(slow.clone(), Thresholds::default()).verdict,
            Decision::Pass
        );
        let absolute = Thresholds {
            max_latency_delta: Some(Duration::from_millis(30)),
            ..Thresholds::default()
        };
        let judged = judge(slow.clone(), absolute);
        assert_eq!(judged.verdict, Decision::Fail);
        assert_eq!(judged.decided_by.threshold, "max_latency_delta");
        let ratio = Thresholds {
            max_latency_delta_ratio: Some(2.5),
            ..Thresholds::default()
        };
        assert_eq!(judge(slow, ratio).verdict, Decision::Pass);
    }
}
