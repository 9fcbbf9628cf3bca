//! `GET /api/v1/routes/{route}/history` and `GET /api/v1/history`: the report's minute
//! buckets, with what became of the mirrored requests each minute.
//!
//! Mirror outcomes are counted by the shadow dispatch on the metrics, not by the report, so
//! [`sample_mirror`] reads the metrics' totals every few seconds and hands their growth to
//! the report's history, and keeps them, with each shadow's breaker, for `/api/v1/routes`
//! (so an open page polling the routes never makes the admin port render the metrics).

use super::reply::{json_compact, text, Reply};
use crate::report::Reporter;
use crate::telemetry::exposition;
use crate::telemetry::metrics::{MirrorOutcome, MIRROR_CIRCUIT_STATE, MIRROR_REQUESTS_TOTAL};
use crate::telemetry::Metrics;
use http::StatusCode;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How often the mirror outcome totals are read into the history.
const MIRROR_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// The path prefix and suffix of one route's history.
const ROUTE_PREFIX: &str = "/api/v1/routes/";
const HISTORY_SUFFIX: &str = "/history";

/// The route label of a `/api/v1/routes/{route}/history` path (percent-decoded; labels such
/// as `/api/users/{id}` are sent URL-encoded), or `None` for another path.
pub fn route_of(path: &str) -> Option<String> {
    let encoded = path
        .strip_prefix(ROUTE_PREFIX)?
        .strip_suffix(HISTORY_SUFFIX)?;
    (!encoded.is_empty()).then(|| super::reply::percent_decode(encoded))
}

/// One route's history; 404 for a route with none.
pub fn get_route(report: &Reporter, route: &str) -> Reply {
    let view = report.history(Some(route));
    if view.series.is_empty() {
        return text(
            StatusCode::NOT_FOUND,
            "no history for this route: it has no compared pairs or mirrored requests yet (see /api/v1/routes)\n",
        );
    }
    json_compact(&view)
}

/// Every route's history.
pub fn get_all(report: &Reporter) -> Reply {
    json_compact(&report.history(None))
}

/// What the mirror did per (route, shadow), and each shadow's breaker, from the metrics.
#[derive(Debug, Default)]
pub struct MirrorState {
    /// Requests sampled for the shadow, by outcome, since start ([`MirrorOutcome::ALL`] order).
    pub outcomes: BTreeMap<(String, String), [u64; MirrorOutcome::ALL.len()]>,
    /// `closed`, `open` or `half_open` by shadow name.
    pub breakers: BTreeMap<String, &'static str>,
}

/// Reads the mirror outcome counters and the breaker gauges from the metrics.
pub fn mirror_state(metrics: &Metrics) -> MirrorState {
    let rendered = metrics.render();
    let mut state = MirrorState::default();
    for sample in exposition::samples(&rendered, MIRROR_REQUESTS_TOTAL) {
        let (Some(route), Some(shadow), Some(outcome)) = (
            sample.label("route"),
            sample.label("shadow"),
            sample.label("outcome"),
        ) else {
            continue;
        };
        let Some(index) = MirrorOutcome::ALL
            .iter()
            .position(|o| o.as_str() == outcome)
        else {
            continue;
        };
        let totals = state
            .outcomes
            .entry((route.to_string(), shadow.to_string()))
            .or_default();
        if let Some(total) = totals.get_mut(index) {
            *total = sample.value.max(0.0) as u64;
        }
    }
    for sample in exposition::samples(&rendered, MIRROR_CIRCUIT_STATE) {
        let Some(shadow) = sample.label("shadow") else {
            continue;
        };
        let breaker = match sample.value as u8 {
            1 => "open",
            2 => "half_open",
            _ => "closed",
        };
        state.breakers.insert(shadow.to_string(), breaker);
    }
    state
}

/// The outcome totals as the API's `{outcome: count}` map (outcomes seen only).
pub fn outcome_map(totals: &[u64; MirrorOutcome::ALL.len()]) -> BTreeMap<&'static str, u64> {
    MirrorOutcome::ALL
        .iter()
        .zip(totals)
        .filter(|(_, count)| **count > 0)
        .map(|(outcome, count)| (outcome.as_str(), *count))
        .collect()
}

/// The last [`MirrorState`] read, shared by the sampler and `/api/v1/routes`.
#[derive(Default)]
pub struct LastMirrorState(Mutex<Arc<MirrorState>>);

impl LastMirrorState {
    /// The state last read (empty before the first read).
    pub fn get(&self) -> Arc<MirrorState> {
        self.0.lock().map(|state| state.clone()).unwrap_or_default()
    }

    fn set(&self, state: MirrorState) {
        if let Ok(mut last) = self.0.lock() {
            *last = Arc::new(state);
        }
    }
}

/// Every few seconds until `shutdown` (the first time at once): reads the mirror's state
/// from the metrics, feeds its outcomes' growth to the history and keeps it for
/// `/api/v1/routes`.
pub async fn sample_mirror(
    metrics: Arc<Metrics>,
    report: Arc<Reporter>,
    last: Arc<LastMirrorState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(MIRROR_SAMPLE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::shutdown::flagged(&mut shutdown) => return,
        }
        let mirrored = mirror_state(&metrics);
        for ((route, shadow), totals) in &mirrored.outcomes {
            let (route, shadow) = (Arc::from(route.as_str()), Arc::from(shadow.as_str()));
            report.observe_mirror(&route, &shadow, totals);
        }
        last.set(mirrored);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_paths_name_their_route_url_encoded() {
        assert_eq!(
            route_of("/api/v1/routes/%2Fapi%2Fusers%2F%7Bid%7D/history").as_deref(),
            Some("/api/users/{id}")
        );
        assert_eq!(
            route_of("/api/v1/routes/api/history").as_deref(),
            Some("api")
        );
        assert_eq!(route_of("/api/v1/routes//history"), None);
        assert_eq!(route_of("/api/v1/routes/x"), None);
        assert_eq!(route_of("/api/v1/history"), None);
    }
}
