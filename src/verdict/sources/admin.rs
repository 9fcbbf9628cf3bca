//! One instance, through its admin port: `/api/v1/routes` for the compared pairs and the
//! latency percentiles, `/metrics` for what became of the shadow requests (the routes API
//! does not carry the mirror's outcomes).
//!
//! The API holds totals since the instance started, so this source judges the cumulative
//! totals; there is no window.

use super::http::{base, Getter};
use super::SourceError;
use crate::telemetry::exposition;
use crate::telemetry::metrics::MIRROR_REQUESTS_TOTAL;
use crate::verdict::evidence::{Book, Evidence};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The parts of a `/api/v1/routes` entry a verdict reads.
#[derive(Debug, Deserialize)]
struct RouteEntry {
    route: String,
    shadow: String,
    comparisons: BTreeMap<String, u64>,
    #[serde(default)]
    divergences_by_kind: BTreeMap<String, u64>,
    latency_ms: Latency,
}

#[derive(Debug, Deserialize)]
struct Latency {
    primary: Percentiles,
    delta: Percentiles,
}

#[derive(Debug, Deserialize)]
struct Percentiles {
    p99: f64,
}

/// The evidence of every (route, shadow) the instance at `url` (its admin address) knows.
pub async fn fetch(getter: &Getter, url: &str) -> Result<Vec<Evidence>, SourceError> {
    let routes_url = format!("{}/api/v1/routes", base(url));
    let routes: Vec<RouteEntry> = super::expect_json(&routes_url, getter.get(&routes_url).await?)?;
    let metrics_url = format!("{}/metrics", base(url));
    let metrics = super::expect_success(&metrics_url, getter.get(&metrics_url).await?)?;
    let mut book = Book::default();
    for entry in routes {
        let evidence = book.entry(&entry.route, &entry.shadow);
        for (result, count) in &entry.comparisons {
            evidence.add_comparisons(result, *count);
        }
        evidence.divergences_by_kind = entry
            .divergences_by_kind
            .into_iter()
            .filter(|(_, count)| *count > 0)
            .collect();
        if evidence.pairs > 0 {
            evidence.latency_delta_p99_seconds = Some(entry.latency_ms.delta.p99 / 1000.0);
            evidence.primary_p99_seconds = Some(entry.latency_ms.primary.p99 / 1000.0);
        }
    }
    for sample in exposition::samples(&metrics.body, MIRROR_REQUESTS_TOTAL) {
        let (Some(route), Some(shadow), Some(outcome)) = (
            sample.label("route"),
            sample.label("shadow"),
            sample.label("outcome"),
        ) else {
            continue;
        };
        book.entry(route, shadow)
            .add_mirror_outcome(outcome, super::count(sample.value));
    }
    Ok(book.into_vec())
}
