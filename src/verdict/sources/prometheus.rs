//! A fleet, through Prometheus: every instance's counters, summed per (route, shadow).
//!
//! Counts are exact, not PromQL's `increase()` (which extrapolates to the window's edges and
//! misses a series' first value, so it returns fractions of pairs): each series is read now
//! and `--window` ago (`offset`), its increase taken in Rust (a counter that went down was
//! reset by a restart, so its whole current value is the increase), and the increases
//! summed across instances. Latency p99s are computed the way `histogram_quantile` does,
//! from the summed bucket increases.

use super::http::{base, encode, Getter};
use super::SourceError;
use crate::telemetry::metrics::{
    COMPARISONS_TOTAL, DIVERGENCES_TOTAL, LATENCY_DELTA_SECONDS, MIRROR_REQUESTS_TOTAL,
    REQUEST_DURATION_SECONDS,
};
use crate::verdict::evidence::{Book, Evidence};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where and what to ask.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Prometheus's base URL.
    pub url: String,
    /// Label matchers every query is narrowed by, without braces (`app="checkout"`).
    pub matchers: String,
    /// How far back the increases reach.
    pub window: Duration,
}

/// The label matchers inside a `--selector '{app="checkout"}'`.
pub fn matchers(selector: &str) -> Result<String, SourceError> {
    let trimmed = selector.trim();
    let inner = trimmed
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .ok_or_else(|| SourceError::BadSelector {
            selector: selector.to_string(),
        })?;
    Ok(inner.trim().trim_end_matches(',').to_string())
}

#[derive(Debug, Deserialize)]
struct QueryAnswer {
    status: String,
    #[serde(default)]
    data: Option<QueryData>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct QueryData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<Series>,
}

#[derive(Debug, Deserialize)]
struct Series {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

impl Series {
    fn number(&self) -> Option<f64> {
        self.value.1.parse::<f64>().ok().filter(|v| !v.is_nan())
    }
}

/// Prometheus's duration syntax for a window (`600s`).
fn promql_duration(window: Duration) -> String {
    format!("{}ms", window.as_millis().max(1))
}

impl Fleet {
    /// `metric{extra,matchers}`.
    fn selector(&self, metric: &str, extra: &str) -> String {
        let parts: Vec<&str> = [extra, self.matchers.as_str()]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect();
        format!("{metric}{{{}}}", parts.join(","))
    }

    async fn query(&self, getter: &Getter, promql: &str) -> Result<Vec<Series>, SourceError> {
        let url = format!("{}/api/v1/query?query={}", base(&self.url), encode(promql));
        let answer = getter.get(&url).await?;
        let parsed: QueryAnswer =
            serde_json::from_str(&answer.body).map_err(|error| SourceError::BadResponse {
                url: url.clone(),
                reason: format!(
                    "HTTP {}, not a Prometheus API answer ({error})",
                    answer.status.as_u16()
                ),
            })?;
        if parsed.status != "success" {
            return Err(SourceError::Query {
                query: promql.to_string(),
                reason: format!(
                    "{}: {}",
                    parsed.error_type.unwrap_or_default(),
                    parsed.error.unwrap_or_default()
                ),
            });
        }
        let data = parsed.data.ok_or_else(|| SourceError::BadResponse {
            url: url.clone(),
            reason: "no data in a successful answer".to_string(),
        })?;
        if data.result_type != "vector" {
            return Err(SourceError::BadResponse {
                url,
                reason: format!("expected an instant vector, got {}", data.result_type),
            });
        }
        Ok(data.result)
    }

    /// Each series' increase over the window, summed over series that share `by` labels.
    async fn increases(
        &self,
        getter: &Getter,
        series: &str,
        by: &[&str],
    ) -> Result<BTreeMap<Vec<String>, f64>, SourceError> {
        let now = self.query(getter, series).await?;
        let before = self
            .query(
                getter,
                &format!("{series} offset {}", promql_duration(self.window)),
            )
            .await?;
        let earlier: BTreeMap<&BTreeMap<String, String>, f64> = before
            .iter()
            .filter_map(|s| Some((&s.metric, s.number()?)))
            .collect();
        let mut sums = BTreeMap::new();
        for series in &now {
            let Some(value) = series.number() else {
                continue;
            };
            let Some(key) = by
                .iter()
                .map(|label| series.metric.get(*label).cloned())
                .collect::<Option<Vec<String>>>()
            else {
                continue;
            };
            let old = earlier.get(&series.metric).copied().unwrap_or(0.0);
            // A counter lower than it was has been reset (a restart): all of it is new.
            let increase = if value >= old { value - old } else { value };
            *sums.entry(key).or_insert(0.0) += increase;
        }
        Ok(sums)
    }

    /// Whether any shadowtap series matches the selector at all.
    async fn any_series(&self, getter: &Getter) -> Result<bool, SourceError> {
        let found = self
            .query(
                getter,
                &format!("count({})", self.selector("", "__name__=~\"shadowtap_.+\"")),
            )
            .await?;
        Ok(found.iter().any(|s| s.number().unwrap_or(0.0) > 0.0))
    }
}

/// Rounds a summed counter increase to a count.
fn count(value: f64) -> u64 {
    super::count(value)
}

/// `histogram_quantile(q, ...)` over `(le, count)` pairs of one histogram: buckets sorted by
/// bound, cumulative counts, linear interpolation inside the bucket the rank falls in.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let mut buckets = buckets.to_vec();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().filter(|(le, _)| le.is_infinite())?.1;
    if total <= 0.0 || buckets.len() < 2 {
        return None;
    }
    let rank = q * total;
    let mut previous: Option<(f64, f64)> = None;
    for &(le, cumulative) in &buckets {
        if cumulative >= rank {
            if le.is_infinite() {
                return previous.map(|(bound, _)| bound);
            }
            let (start, below) = match previous {
                Some(previous) => previous,
                None if le <= 0.0 => return Some(le),
                None => (0.0, 0.0),
            };
            let within = cumulative - below;
            if within <= 0.0 {
                return Some(le);
            }
            return Some(start + (le - start) * (rank - below) / within);
        }
        previous = Some((le, cumulative));
    }
    None
}

/// The p99 of each histogram, by its key labels (`le` last in `by`).
fn p99s(buckets: BTreeMap<Vec<String>, f64>) -> BTreeMap<Vec<String>, f64> {
    let mut grouped: BTreeMap<Vec<String>, Vec<(f64, f64)>> = BTreeMap::new();
    for (mut key, value) in buckets {
        let Some(le) = key.pop() else { continue };
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            match le.parse::<f64>() {
                Ok(bound) => bound,
                Err(_) => continue,
            }
        };
        grouped.entry(key).or_default().push((bound, value));
    }
    grouped
        .into_iter()
        .filter_map(|(key, buckets)| Some((key, quantile(0.99, &buckets)?)))
        .collect()
}

/// The evidence of every (route, shadow) the fleet's series name within the window.
pub async fn fetch(getter: &Getter, fleet: &Fleet) -> Result<Vec<Evidence>, SourceError> {
    if !fleet.any_series(getter).await? {
        return Err(SourceError::NoSeries {
            selector: format!("{{{}}}", fleet.matchers),
        });
    }
    let mut book = Book::default();
    let by = ["route", "shadow", "result"];
    let comparisons = fleet
        .increases(getter, &fleet.selector(COMPARISONS_TOTAL, ""), &by)
        .await?;
    for (key, value) in comparisons {
        if let [route, shadow, result] = key.as_slice() {
            book.entry(route, shadow)
                .add_comparisons(result, count(value));
        }
    }
    let by = ["route", "shadow", "outcome"];
    let mirrored = fleet
        .increases(getter, &fleet.selector(MIRROR_REQUESTS_TOTAL, ""), &by)
        .await?;
    for (key, value) in mirrored {
        if let [route, shadow, outcome] = key.as_slice() {
            book.entry(route, shadow)
                .add_mirror_outcome(outcome, count(value));
        }
    }
    let by = ["route", "shadow", "kind"];
    let kinds = fleet
        .increases(getter, &fleet.selector(DIVERGENCES_TOTAL, ""), &by)
        .await?;
    for (key, value) in kinds {
        if let ([route, shadow, kind], n @ 1..) = (key.as_slice(), count(value)) {
            if let Some(evidence) = book.get_mut(route, shadow) {
                evidence.divergences_by_kind.insert(kind.clone(), n);
            }
        }
    }
    let delta_buckets = format!("{LATENCY_DELTA_SECONDS}_bucket");
    let deltas = fleet
        .increases(
            getter,
            &fleet.selector(&delta_buckets, ""),
            &["route", "shadow", "le"],
        )
        .await?;
    let duration_buckets = format!("{REQUEST_DURATION_SECONDS}_bucket");
    let primaries = fleet
        .increases(
            getter,
            &fleet.selector(&duration_buckets, "target=\"primary\""),
            &["route", "le"],
        )
        .await?;
    let primaries = p99s(primaries);
    let mut evidence = book.into_vec();
    let deltas = p99s(deltas);
    for entry in &mut evidence {
        let key = vec![entry.route.clone(), entry.shadow.clone()];
        entry.latency_delta_p99_seconds = deltas.get(&key).copied();
        entry.primary_p99_seconds = primaries.get(&vec![entry.route.clone()]).copied();
    }
    Ok(evidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_as_prometheus_does() {
        // 100 observations: 50 in (0, 0.01], 49 in (0.01, 0.1], 1 over 0.1.
        let buckets = [(0.01, 50.0), (0.1, 99.0), (f64::INFINITY, 100.0)];
        let p50 = quantile(0.5, &buckets).unwrap();
        assert!((p50 - 0.01).abs() < 1e-9, "{p50}");
        let p99 = quantile(0.99, &buckets).unwrap();
        assert!((p99 - 0.1).abs() < 1e-9, "{p99}");
        // The rank past the last finite bound: that bound.
        assert_eq!(quantile(0.999, &buckets), Some(0.1));
        // Negative buckets: the first bound when the rank falls in it.
        let deltas = [
            (-0.01, 10.0),
            (0.0, 10.0),
            (0.01, 20.0),
            (f64::INFINITY, 20.0),
        ];
        assert_eq!(quantile(0.2, &deltas), Some(-0.01));
        let p75 = quantile(0.75, &deltas).unwrap();
        assert!((p75 - 0.005).abs() < 1e-9, "{p75}");
        assert_eq!(quantile(0.5, &[(f64::INFINITY, 0.0)]), None);
    }

    #[test]
    fn selectors_are_narrowed_by_the_matchers() {
        assert_eq!(
            matchers(" {app=\"checkout\",} ").unwrap(),
            "app=\"checkout\""
        );
        assert_eq!(matchers("{}").unwrap(), "");
        assert!(matchers("app=\"checkout\"").is_err());
        let fleet = Fleet {
            url: "http://p".into(),
            matchers: "app=\"checkout\"".into(),
            window: Duration::from_secs(600),
        };
        assert_eq!(
            fleet.selector("m", "target=\"primary\""),
            "m{target=\"primary\",app=\"checkout\"}"
        );
        assert_eq!(promql_duration(Duration::from_secs(600)), "600000ms");
    }
}
