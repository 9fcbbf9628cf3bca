//! `[verdict]`: the thresholds `shadowtap verdict` judges a shadow against, with per-route
//! overrides in `[verdict.routes."ROUTE"]`.
//!
//! The section lives in the proxy's config file (so `shadowtap check` validates it with every
//! other key) and may also stand alone in a file that has nothing else: a CI job that judges
//! a fleet through Prometheus has no proxy to configure (`VerdictConfig::load`, next to
//! [`super::Config::load`], reads it so).

use super::error::Problems;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Defaults, named once (the issue's contract).
pub mod defaults {
    /// Highest divergence ratio a passing shadow may have.
    pub const MAX_DIVERGENCE_RATIO: f64 = 0.05;
    /// Highest ratio of shadow requests that failed or timed out.
    pub const MAX_SHADOW_ERROR_RATIO: f64 = 0.05;
    /// Fewest compared pairs (and shadow requests) before a ratio is judged at all.
    pub const MIN_PAIRS: u64 = 100;
}

/// The threshold keys as written, shared by `[verdict]` and each `[verdict.routes."ROUTE"]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThresholds {
    pub max_divergence_ratio: Option<f64>,
    pub max_shadow_error_ratio: Option<f64>,
    pub min_pairs: Option<u64>,
    pub max_latency_delta: Option<String>,
    pub max_latency_delta_ratio: Option<f64>,
}

/// `[verdict]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerdict {
    pub max_divergence_ratio: Option<f64>,
    pub max_shadow_error_ratio: Option<f64>,
    pub min_pairs: Option<u64>,
    pub max_latency_delta: Option<String>,
    pub max_latency_delta_ratio: Option<f64>,
    #[serde(default)]
    pub routes: BTreeMap<String, RawThresholds>,
}

/// Thresholds, every one optional: a route's overrides, or command-line flags, laid over the
/// section's values by [`Overrides::over`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct Overrides {
    /// Highest divergence ratio (diverged / compared pairs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_divergence_ratio: Option<f64>,
    /// Highest shadow error ratio ((error + timeout) / shadow requests sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_shadow_error_ratio: Option<f64>,
    /// Fewest compared pairs before anything is judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_pairs: Option<u64>,
    /// Highest p99 of shadow minus primary latency.
    #[serde(
        with = "super::compare::optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_latency_delta: Option<Duration>,
    /// Highest p99 latency delta over the primary's p99 latency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_latency_delta_ratio: Option<f64>,
}

impl Overrides {
    /// `self`'s values where set, `base`'s elsewhere.
    pub fn over(&self, base: &Thresholds) -> Thresholds {
        Thresholds {
            max_divergence_ratio: self
                .max_divergence_ratio
                .unwrap_or(base.max_divergence_ratio),
            max_shadow_error_ratio: self
                .max_shadow_error_ratio
                .unwrap_or(base.max_shadow_error_ratio),
            min_pairs: self.min_pairs.unwrap_or(base.min_pairs),
            max_latency_delta: self.max_latency_delta.or(base.max_latency_delta),
            max_latency_delta_ratio: self
                .max_latency_delta_ratio
                .or(base.max_latency_delta_ratio),
        }
    }
}

/// The thresholds one route is judged against, every default filled in. The latency limits
/// stay `None` until set: latency is then reported but not judged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// Highest divergence ratio (diverged / compared pairs).
    pub max_divergence_ratio: f64,
    /// Highest shadow error ratio ((error + timeout) / shadow requests sent).
    pub max_shadow_error_ratio: f64,
    /// Fewest compared pairs (and shadow requests) before a ratio is judged.
    pub min_pairs: u64,
    /// Highest p99 of shadow minus primary latency.
    #[serde(
        with = "super::compare::optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_latency_delta: Option<Duration>,
    /// Highest p99 latency delta over the primary's p99 latency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_latency_delta_ratio: Option<f64>,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            max_divergence_ratio: defaults::MAX_DIVERGENCE_RATIO,
            max_shadow_error_ratio: defaults::MAX_SHADOW_ERROR_RATIO,
            min_pairs: defaults::MIN_PAIRS,
            max_latency_delta: None,
            max_latency_delta_ratio: None,
        }
    }
}

/// `[verdict]`, validated.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerdictConfig {
    /// Every route's thresholds unless overridden.
    #[serde(flatten)]
    pub thresholds: Thresholds,
    /// Overrides by route label (as the `route` label of the metrics and the API name it).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: BTreeMap<String, Overrides>,
}

impl VerdictConfig {
    /// The thresholds of `route`: its overrides over the section's values.
    pub fn for_route(&self, route: &str) -> Thresholds {
        match self.routes.get(route) {
            Some(overrides) => overrides.over(&self.thresholds),
            None => self.thresholds,
        }
    }
}

/// `[verdict]` as written -> typed, every problem with its key path.
pub(crate) fn validate(raw: Option<RawVerdict>, problems: &mut Problems) -> VerdictConfig {
    let Some(raw) = raw else {
        return VerdictConfig::default();
    };
    let section = RawThresholds {
        max_divergence_ratio: raw.max_divergence_ratio,
        max_shadow_error_ratio: raw.max_shadow_error_ratio,
        min_pairs: raw.min_pairs,
        max_latency_delta: raw.max_latency_delta,
        max_latency_delta_ratio: raw.max_latency_delta_ratio,
    };
    let thresholds = validate_thresholds("verdict", section, problems).over(&Thresholds::default());
    let routes = raw
        .routes
        .into_iter()
        .map(|(route, raw)| {
            let path = format!("verdict.routes.{route}");
            if route.is_empty() {
                problems.push(&path, "the route label must not be empty");
            }
            let overrides = validate_thresholds(&path, raw, problems);
            (route, overrides)
        })
        .collect();
    VerdictConfig { thresholds, routes }
}

fn validate_thresholds(path: &str, raw: RawThresholds, problems: &mut Problems) -> Overrides {
    let mut ratio = |key: &str, value: Option<f64>| {
        value.filter(|ratio| {
            let valid = ratio.is_finite() && (0.0..=1.0).contains(ratio);
            if !valid {
                problems.push(
                    format!("{path}.{key}"),
                    format!("{ratio} must be a ratio from 0 to 1 (0.05 is 5 %)"),
                );
            }
            valid
        })
    };
    let max_divergence_ratio = ratio("max_divergence_ratio", raw.max_divergence_ratio);
    let max_shadow_error_ratio = ratio("max_shadow_error_ratio", raw.max_shadow_error_ratio);
    let min_pairs = raw.min_pairs.filter(|pairs| {
        if *pairs == 0 {
            problems.push(
                format!("{path}.min_pairs"),
                "must be at least 1 (a verdict needs evidence)",
            );
        }
        *pairs > 0
    });
    let max_latency_delta = raw.max_latency_delta.as_deref().and_then(|text| {
        match humantime::parse_duration(text.trim()) {
            Ok(duration) => Some(duration),
            Err(_) => {
                problems.push(
                    format!("{path}.max_latency_delta"),
                    format!("{text:?} is not a duration (e.g. \"20ms\", \"1s\")"),
                );
                None
            }
        }
    });
    let max_latency_delta_ratio = raw.max_latency_delta_ratio.filter(|ratio| {
        let valid = ratio.is_finite() && *ratio >= 0.0;
        if !valid {
            problems.push(
                format!("{path}.max_latency_delta_ratio"),
                format!("{ratio} must be a number of at least 0 (p99 delta / primary p99)"),
            );
        }
        valid
    });
    Overrides {
        max_divergence_ratio,
        max_shadow_error_ratio,
        min_pairs,
        max_latency_delta,
        max_latency_delta_ratio,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_takes_its_overrides_over_the_section() {
        let mut problems = Problems::default();
        let raw = RawVerdict {
            min_pairs: Some(50),
            max_latency_delta: Some("20ms".into()),
            routes: [(
                "/search".to_string(),
                RawThresholds {
                    max_divergence_ratio: Some(0.01),
                    ..RawThresholds::default()
                },
            )]
            .into(),
            ..RawVerdict::default()
        };
        let config = validate(Some(raw), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let search = config.for_route("/search");
        assert_eq!(search.max_divergence_ratio, 0.01);
        assert_eq!(
            search.min_pairs, 50,
            "the section's value under the override"
        );
        assert_eq!(search.max_latency_delta, Some(Duration::from_millis(20)));
        let other = config.for_route("/other");
        assert_eq!(other.max_divergence_ratio, defaults::MAX_DIVERGENCE_RATIO);
        assert_eq!(
            other.max_shadow_error_ratio,
            defaults::MAX_SHADOW_ERROR_RATIO
        );
        assert_eq!(
            other.max_latency_delta_ratio, None,
            "latency ratio unset: not judged"
        );
        assert_eq!(validate(None, &mut problems), VerdictConfig::default());
    }

    #[test]
    fn bad_values_are_reported_with_their_key() {
        let mut problems = Problems::default();
        let raw = RawVerdict {
            max_divergence_ratio: Some(1.5),
            min_pairs: Some(0),
            max_latency_delta: Some("soon".into()),
            routes: [(
                "/r".to_string(),
                RawThresholds {
                    max_shadow_error_ratio: Some(-0.1),
                    max_latency_delta_ratio: Some(f64::NAN),
                    ..RawThresholds::default()
                },
            )]
            .into(),
            ..RawVerdict::default()
        };
        validate(Some(raw), &mut problems);
        let error = problems.into_error().to_string();
        for key in [
            "verdict.max_divergence_ratio:",
            "verdict.min_pairs:",
            "verdict.max_latency_delta:",
            "verdict.routes./r.max_shadow_error_ratio:",
            "verdict.routes./r.max_latency_delta_ratio:",
        ] {
            assert!(error.contains(key), "{key} in {error}");
        }
    }
}
