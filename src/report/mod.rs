//! Reporting: compares completed pairs on worker threads and turns the results into
//! metrics, per-route statistics, redacted samples and the JSONL diff log.
//!
//! The [`Reporter`] is the mirror's [`PairSink`]. `accept` only tries to queue the pair
//! (bounded; when the workers fall behind, pairs are dropped and counted); the comparison
//! itself runs on dedicated OS threads, so a 1 MB JSON diff never occupies a thread that
//! serves live traffic.
//!
//! | module | role |
//! |---|---|
//! | [`stats`] | per (route, shadow) counts, top fields, latency percentiles |
//! | [`samples`] | redacted divergent samples, bounded store |
//! | [`difflog`] | JSONL file with size rotation |
//! | [`endpoints`] | endpoint names (templates, path shapes) and results per endpoint |
//! | [`history`] | one-minute buckets per (route, shadow) for the last hour, bounded |
//! | [`queue`] | the bounded, batched hand-off to the workers |

pub mod cells;
pub mod difflog;
pub mod endpoints;
pub mod history;
pub mod queue;
pub mod samples;
pub mod stats;

use crate::compare::json::{JsonRules, PointerPattern};
use crate::compare::noise::{LearnSettings, NoiseField, NoiseModel, Pin};
use crate::compare::pins::Pins;
use crate::compare::{self, headers, CompareRules, DiffKind, LatencyRule};
use crate::config::{CompareConfig, Config};
use crate::message::pair::{CompletedPair, PairSink};
use crate::telemetry::metrics::{
    COMPARE_BODY_SKIPPED_TOTAL, COMPARE_DROPPED_TOTAL, COMPARISONS_TOTAL, DIVERGENCES_TOTAL,
    LATENCY_DELTA_SECONDS,
};
use crate::telemetry::Metrics;
use queue::{PairQueue, Refused};
use samples::{DivergentPair, LatencyPair, MessageExcerpt, Redactor, SampleStore};
use serde::Serialize;
use stats::{FieldCount, PairStats, Percentiles};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Fields tracked per (route, shadow) by the top-field sketch, per field shown.
const TOP_FIELD_SKETCH_FACTOR: usize = 10;
/// Noise fields tracked per endpoint.
const MAX_NOISE_FIELDS: usize = 256;
/// How often idle workers look at the queue (see [`queue`]): the most a comparison result
/// waits before a worker picks its pair up.
const WORKER_TICK: Duration = Duration::from_millis(10);
/// Pairs a worker takes off the queue at once.
const WORKER_BATCH: usize = 64;

/// A compared pair's result (the `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PairVerdict {
    /// No differences, bodies included.
    Match,
    /// At least one difference that is not noise.
    Diverged,
    /// Differences, all of them noise.
    NoiseOnly,
    /// No difference that is not noise, but the bodies could not be judged (the reason is
    /// on `shadowtap_compare_body_skipped_total`): neither a match nor a divergence.
    Unjudged,
}

impl PairVerdict {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            PairVerdict::Match => "match",
            PairVerdict::Diverged => "diverged",
            PairVerdict::NoiseOnly => "noise_only",
            PairVerdict::Unjudged => "unjudged",
        }
    }
}

/// A route's comparison setup, resolved from config once.
struct RouteSetup {
    rules: CompareRules,
    redactor: Redactor,
    /// Shared by the noise models of all the route's labels; runtime pins land here.
    pins: Arc<Pins>,
    /// The route's name and how many templates it has (its first labels).
    name: String,
    templates: usize,
}

/// (route label, shadow name): shared strings, so finding a pair's entry allocates nothing.
type PairKey = (Arc<str>, Arc<str>);

/// Everything the workers and the admin API share.
struct State {
    config: CompareConfig,
    metrics: Arc<Metrics>,
    /// Each route's pins, by route name: kept across reloads (runtime pins survive, config
    /// pins are replaced), shared with the route's noise models.
    pins: Mutex<HashMap<String, Arc<Pins>>>,
    /// Looked up once per compared pair: foldhash, not SipHash (the keys are the config's
    /// route and shadow names, not a client's).
    stats: Mutex<HashMap<PairKey, PairStats, foldhash::fast::RandomState>>,
    /// Endpoint names, results per endpoint, and each route label's noise model.
    endpoints: endpoints::EndpointBook,
    samples: Mutex<SampleStore>,
    /// The last hour per (route, shadow), a bucket a minute.
    history: Mutex<history::History>,
    diff_log: Mutex<Option<difflog::DiffLog>>,
}

/// One config's comparison rules, with the metric handles of its route table: each pair is
/// judged by the rules of the config that mirrored it, so a reload never mixes the route
/// indices of two configs.
struct Rules {
    routes: Vec<RouteSetup>,
    compare: CompareConfig,
    metrics: Arc<Metrics>,
    /// The endpoint book's slot of each (route, label) index.
    slots: Vec<Vec<(usize, usize)>>,
}

/// A pair waiting for a worker, with the rules it is judged by.
struct Judging {
    pair: CompletedPair,
    rules: Arc<Rules>,
}

/// The comparison engine: a bounded queue in front of worker threads.
pub struct Reporter {
    queue: Arc<PairQueue<Judging>>,
    state: Arc<State>,
    dropped: metrics::Counter,
}

/// Why the reporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The diff log could not be opened.
    #[error("cannot open the diff log {path}")]
    DiffLog {
        /// The configured path.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A worker thread could not be started.
    #[error("cannot start a comparison worker")]
    Spawn(#[source] std::io::Error),
}

impl Reporter {
    /// Builds the per-route rules, opens the diff log and starts the workers.
    pub fn start(config: &Config, metrics: Arc<Metrics>) -> Result<Arc<Reporter>, ReportError> {
        let compare = config.compare.clone();
        let diff_log = match &compare.diff_log {
            Some(path) => Some(
                difflog::DiffLog::open(
                    path.as_ref(),
                    compare.diff_log_max_bytes,
                    compare.diff_log_max_files,
                )
                .map_err(|source| ReportError::DiffLog {
                    path: path.clone(),
                    source,
                })?,
            ),
            None => None,
        };
        let state = Arc::new(State {
            endpoints: endpoints::EndpointBook::new(compare.endpoints_per_route),
            samples: Mutex::new(SampleStore::new(
                compare.samples_per_route,
                compare.samples_total,
            )),
            history: Mutex::new(history::History::new(
                compare.history_minutes,
                compare.history_series,
            )),
            config: compare,
            metrics: metrics.clone(),
            pins: Mutex::new(HashMap::new()),
            stats: Mutex::new(HashMap::default()),
            diff_log: Mutex::new(diff_log),
        });
        let queue = Arc::new(PairQueue::new(state.config.queue_capacity, WORKER_TICK));
        for index in 0..state.config.workers {
            let state = state.clone();
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("shadowtap-compare-{index}"))
                .spawn(move || work(&state, &queue))
                .map_err(ReportError::Spawn)?;
        }
        Ok(Arc::new(Reporter {
            queue,
            state,
            dropped: metrics.counter(COMPARE_DROPPED_TOTAL, &[("reason", "queue_full")]),
        }))
    }

    /// The sink of one config's pairs: they are judged by its rules and counted in `metrics`
    /// (its route table, see [`Metrics::with_routes`]). `route_labels` are the router's labels
    /// of each route. The statistics, samples and learned noise of a route are kept by name, so
    /// they carry on across the sinks of successive configs.
    pub fn sink(
        self: &Arc<Self>,
        config: &Config,
        route_labels: &[Vec<String>],
        metrics: Arc<Metrics>,
    ) -> Arc<dyn PairSink> {
        let slots = self.state.endpoints.slots(
            config
                .routes
                .iter()
                .zip(route_labels)
                .map(|(route, labels)| (route.name.as_str(), labels.as_slice())),
        );
        if let Ok(mut pins) = self.state.pins.lock() {
            pins.retain(|name, _| config.routes.iter().any(|route| route.name == *name));
        }
        let rules = Rules {
            routes: config
                .routes
                .iter()
                .map(|route| route_setup(route, &config.compare, self.pins_of(route)))
                .collect(),
            compare: config.compare.clone(),
            metrics,
            slots,
        };
        Arc::new(ConfigSink {
            reporter: self.clone(),
            rules: Arc::new(rules),
        })
    }

    /// The pins of `route`, kept by its name across reloads: the config's replaced by the
    /// route's current ones, the runtime ones as they were.
    fn pins_of(&self, route: &crate::config::RouteConfig) -> Arc<Pins> {
        let mut all = self
            .state
            .pins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pins = all
            .entry(route.name.clone())
            .or_insert_with(|| Arc::new(Pins::default()))
            .clone();
        pins.set_config(config_pins(&route.compare));
        pins
    }

    /// Stops accepting pairs; the workers finish what is queued and exit.
    pub fn stop(&self) {
        self.queue.close();
    }

    /// Per (route, shadow) summary for `GET /api/v1/routes`.
    pub fn routes(&self) -> Vec<RouteSummary> {
        let Ok(stats) = self.state.stats.lock() else {
            return Vec::new();
        };
        let top = self.state.config.top_fields;
        let mut out: Vec<RouteSummary> = stats
            .iter()
            .map(|((route, shadow), stats)| {
                let compared = stats.matched + stats.diverged + stats.noise_only + stats.unjudged;
                RouteSummary {
                    route: route.to_string(),
                    shadow: shadow.to_string(),
                    comparisons: ResultCounts {
                        r#match: stats.matched,
                        diverged: stats.diverged,
                        noise_only: stats.noise_only,
                        unjudged: stats.unjudged,
                    },
                    divergence_rate: if compared == 0 {
                        0.0
                    } else {
                        stats.diverged as f64 / compared as f64
                    },
                    divergences_by_kind: DiffKind::ALL
                        .iter()
                        .zip(stats.kinds)
                        .map(|(kind, count)| (kind.as_str(), count))
                        .collect(),
                    body_skipped: stats.body_skipped,
                    non2xx: SideCounts {
                        primary: stats.primary_non2xx,
                        shadow: stats.shadow_non2xx,
                    },
                    top_fields: stats.fields.top(top),
                    latency_ms: LatencySummary {
                        primary: stats.primary.percentiles(),
                        shadow: stats.shadow.percentiles(),
                        delta: stats.delta.percentiles(),
                    },
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.route, &a.shadow).cmp(&(&b.route, &b.shadow)));
        out
    }

    /// Recent divergent samples for `GET /api/v1/samples`, newest first.
    pub fn samples(&self, route: Option<&str>, limit: usize) -> Vec<DivergentPair> {
        self.state
            .samples
            .lock()
            .map(|store| store.recent(route, limit))
            .unwrap_or_default()
    }

    /// The last minutes of `route` (a label; every route with `None`), for
    /// `GET /api/v1/routes/{route}/history`.
    pub fn history(&self, route: Option<&str>) -> history::HistoryView {
        let minute = history::current_minute();
        let history = self
            .state
            .history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        history.view(route, minute)
    }

    /// Adds the growth of the mirror outcome counters of (route, shadow) since the last call
    /// to the current minute (see [`history::History::observe_mirror`]).
    pub fn observe_mirror(
        &self,
        route: &Arc<str>,
        shadow: &Arc<str>,
        totals: &[u64; crate::telemetry::metrics::MirrorOutcome::ALL.len()],
    ) {
        let minute = history::current_minute();
        if let Ok(mut history) = self.state.history.lock() {
            history.observe_mirror(route, shadow, minute, totals);
        }
    }

    /// Noise per route label for `GET /api/v1/noise`.
    pub fn noise(&self) -> BTreeMap<String, Vec<NoiseField>> {
        let shown = self.state.config.top_fields;
        let mut out: BTreeMap<String, Vec<NoiseField>> = BTreeMap::new();
        // Two routes may share a label text; their fields are listed together.
        for (label, model) in self.state.endpoints.models() {
            out.entry(label.to_string())
                .or_default()
                .extend(model.report(shown));
        }
        out
    }

    /// Pins `field` of route `route` (its name) as noise or signal from the next compared
    /// pair on, as a config pin would; `None` removes a runtime pin (a config pin of the
    /// field is in force again). `Err` names no route. Runtime pins outlive a reload.
    pub fn pin(&self, route: &str, field: String, pin: Option<Pin>) -> Result<(), UnknownRoute> {
        let pins = self
            .state
            .pins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(route)
            .cloned();
        let Some(pins) = pins else {
            return Err(UnknownRoute(route.to_string()));
        };
        pins.set(field.clone(), pin);
        tracing::info!(route, field = %field, pin = ?pin, "noise pin set");
        Ok(())
    }

    /// Results per endpoint for `GET /api/v1/endpoints`.
    pub fn endpoints(&self) -> Vec<endpoints::EndpointSummary> {
        self.state.endpoints.view()
    }
}

/// One config's [`PairSink`] ([`Reporter::sink`]).
struct ConfigSink {
    reporter: Arc<Reporter>,
    rules: Arc<Rules>,
}

impl PairSink for ConfigSink {
    fn accept(&self, pair: CompletedPair) {
        let reporter = &self.reporter;
        let judging = Judging {
            pair,
            rules: self.rules.clone(),
        };
        match reporter.queue.push(judging) {
            Ok(()) => {}
            Err(Refused::Full(_)) | Err(Refused::Closed(_)) => reporter.dropped.increment(1),
        }
    }
}

/// A route name no route has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no route is named {0:?}")]
pub struct UnknownRoute(pub String);

/// `GET /api/v1/routes` entry.
#[derive(Debug, Clone, Serialize)]
pub struct RouteSummary {
    /// Route label.
    pub route: String,
    /// Shadow upstream.
    pub shadow: String,
    /// Counts by result.
    pub comparisons: ResultCounts,
    /// diverged / compared.
    pub divergence_rate: f64,
    /// Diverged pairs by kind.
    pub divergences_by_kind: BTreeMap<&'static str, u64>,
    /// Pairs whose bodies were not compared.
    pub body_skipped: u64,
    /// Compared pairs in which each side answered other than 2xx: a shadow that fails
    /// where the primary succeeds shows here, not only as a `status` divergence.
    pub non2xx: SideCounts,
    /// Most frequent diverging fields.
    pub top_fields: Vec<FieldCount>,
    /// Latency percentiles.
    pub latency_ms: LatencySummary,
}

/// One count per side of a pair.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SideCounts {
    /// The primary's answers.
    pub primary: u64,
    /// The shadow's answers.
    pub shadow: u64,
}

/// Counts by result.
#[derive(Debug, Clone, Serialize)]
pub struct ResultCounts {
    /// Matched pairs.
    pub r#match: u64,
    /// Diverged pairs.
    pub diverged: u64,
    /// Noise-only pairs.
    pub noise_only: u64,
    /// Pairs with no difference found whose bodies could not be judged.
    pub unjudged: u64,
}

/// Primary, shadow and delta percentiles.
#[derive(Debug, Clone, Serialize)]
pub struct LatencySummary {
    /// Primary.
    pub primary: Percentiles,
    /// Shadow.
    pub shadow: Percentiles,
    /// Shadow minus primary.
    pub delta: Percentiles,
}

/// A route's `compare.noise` table as pins.
fn config_pins(rules: &crate::config::RouteCompare) -> BTreeMap<String, Pin> {
    rules
        .noise
        .iter()
        .map(|(field, pin)| {
            let pin = if pin == "signal" {
                Pin::Signal
            } else {
                Pin::Noise
            };
            (field.clone(), pin)
        })
        .collect()
}

fn route_setup(
    route: &crate::config::RouteConfig,
    compare: &CompareConfig,
    pins: Arc<Pins>,
) -> RouteSetup {
    let rules = &route.compare;
    let patterns = |list: &[String]| -> Vec<PointerPattern> {
        list.iter()
            .filter_map(|p| PointerPattern::parse(p).ok())
            .collect()
    };
    let defaults = match rules.default_ignored_headers {
        true => headers::DEFAULT_IGNORED,
        false => &[],
    };
    // Bodies are always compared after decoding, so framing never counts.
    let ignored = headers::NameSet::new(
        defaults
            .iter()
            .chain(headers::FRAMING)
            .copied()
            .chain(rules.ignore_headers.iter().map(String::as_str)),
    );
    RouteSetup {
        rules: CompareRules {
            ignored_headers: ignored,
            json: JsonRules {
                ignore: patterns(&rules.ignore),
                unordered_arrays: rules.unordered_arrays,
                unordered_paths: patterns(&rules.unordered_paths),
                numeric_tolerance: rules.numeric_tolerance,
                max_changes: compare.max_differences,
            },
            max_decoded_bytes: compare.max_decoded_bytes,
            latency: rules.latency.as_ref().map(|rule| LatencyRule {
                max_delta: rule.max_delta,
                max_ratio: rule.max_ratio,
            }),
            protobuf: rules.protobuf.clone().map(compare::protobuf::Schema::new),
        },
        redactor: Redactor::for_route(route, compare),
        name: route.name.clone(),
        templates: route.templates.len(),
        pins,
    }
}

fn work(state: &State, queue: &PairQueue<Judging>) {
    let mut batch = Vec::with_capacity(WORKER_BATCH);
    while queue.pop_batch(&mut batch, WORKER_BATCH) {
        for Judging { pair, rules } in batch.drain(..) {
            // A panic while judging one pair is logged and counted, and the worker goes on
            // with the next (a worker lost to it would shrink the pool for good).
            let judged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                process(state, &rules, pair)
            }));
            if let Err(payload) = judged {
                let task = crate::telemetry::metrics::Task::Compare;
                crate::supervise::report(&state.metrics, task, &(), &*payload);
            }
        }
    }
}

fn process(state: &State, rules: &Rules, pair: CompletedPair) {
    let (Some(setup), Some(slot)) = (
        rules.routes.get(pair.route_index),
        rules
            .slots
            .get(pair.route_key.0)
            .and_then(|labels| labels.get(pair.route_key.1)),
    ) else {
        return;
    };
    let slot = *slot;
    let path = pair.request.path_and_query.as_str();
    let mut comparison =
        compare::compare_call(&pair.primary, &pair.shadow_response, &setup.rules, path);
    comparison
        .differences
        .truncate(rules.compare.max_differences);
    let secondary = pair.secondary.as_ref().map(|secondary| {
        compare::compare_call(&pair.primary, secondary, &setup.rules, path).differences
    });
    let (endpoint, model) = state.endpoints.name(
        endpoints::Request {
            key: slot,
            label: &pair.route,
            route: &setup.name,
            templated: pair.route_key.1 < setup.templates,
            method: pair.request.method.as_str(),
            path: &pair.request.path_and_query,
        },
        || noise_model(&rules.compare, setup),
    );
    let observed = compare::noise::Observed {
        primary: &pair.primary,
        shadow: &pair.shadow_response,
        documents: comparison.documents.as_ref().map(|(a, b)| (a, b)),
    };
    model.classify(
        &endpoint,
        &mut comparison.differences,
        secondary.as_deref(),
        Some(&observed),
    );
    // Judged after noise: a route's own latency rule is never learned away.
    if let Some(rule) = &setup.rules.latency {
        comparison.differences.extend(compare::judge_latency(
            pair.primary.latency,
            pair.shadow_response.latency,
            rule,
        ));
    }

    let verdict = verdict(&comparison);
    let metrics = &rules.metrics;
    let route_metrics = metrics.route(Some(pair.route_key));
    let shadow = pair.shadow_position;
    // Counted last, once everything else about the pair is recorded (divergences, skips,
    // stats, the sample, the diff log): whoever sees the count sees the rest of the pair.
    let compared = metrics.pair_counter(
        route_metrics,
        shadow,
        COMPARISONS_TOTAL,
        ("result", verdict.as_str()),
    );
    let delta = pair.shadow_response.latency.as_secs_f64() - pair.primary.latency.as_secs_f64();
    if let Some(histogram) = metrics.pair_histogram(route_metrics, shadow, LATENCY_DELTA_SECONDS) {
        histogram.record(delta);
    }
    if let Some(skip) = comparison.body_skipped {
        if let Some(counter) = metrics.pair_counter(
            route_metrics,
            shadow,
            COMPARE_BODY_SKIPPED_TOTAL,
            ("reason", skip.as_str()),
        ) {
            counter.increment(1);
        }
    }
    let kinds: BTreeSet<DiffKind> = comparison
        .differences
        .iter()
        .filter(|d| d.noise.is_none())
        .map(|d| d.kind)
        .collect();
    for kind in &kinds {
        if let Some(counter) = metrics.pair_counter(
            route_metrics,
            shadow,
            DIVERGENCES_TOTAL,
            ("kind", kind.as_str()),
        ) {
            counter.increment(1);
        }
    }

    state.endpoints.record(
        slot,
        &endpoint,
        (pair.shadow_position, &pair.shadow),
        verdict.as_str(),
    );
    if let Ok(mut stats) = state.stats.lock() {
        let capacity = rules.compare.top_fields.max(1) * TOP_FIELD_SKETCH_FACTOR;
        let entry = stats
            .entry((pair.route.clone(), pair.shadow.clone()))
            .or_insert_with(|| PairStats::new(capacity));
        entry.record_latency(pair.primary.latency, pair.shadow_response.latency);
        entry.body_skipped += u64::from(comparison.body_skipped.is_some());
        entry.primary_non2xx += u64::from(!pair.primary.status.is_success());
        entry.shadow_non2xx += u64::from(!pair.shadow_response.status.is_success());
        match verdict {
            PairVerdict::Match => entry.matched += 1,
            PairVerdict::NoiseOnly => entry.noise_only += 1,
            PairVerdict::Unjudged => entry.unjudged += 1,
            PairVerdict::Diverged => {
                entry.diverged += 1;
                entry.record_kinds(&kinds.iter().copied().collect::<Vec<_>>());
                let fields: BTreeSet<String> = comparison
                    .differences
                    .iter()
                    .filter(|d| d.noise.is_none())
                    .map(compare::noise::field_key)
                    .collect();
                for field in fields {
                    entry.fields.add(&field);
                }
            }
        }
    }

    if let Ok(mut history) = state.history.lock() {
        let point = history::PairPoint {
            diverged: verdict == PairVerdict::Diverged,
            noise_only: verdict == PairVerdict::NoiseOnly,
            primary: pair.primary.latency,
            shadow: pair.shadow_response.latency,
        };
        history.record_pair(&pair.route, &pair.shadow, history::current_minute(), point);
    }

    if verdict != PairVerdict::Diverged {
        if let Some(counter) = compared {
            counter.increment(1);
        }
        return;
    }
    let sample = divergent_pair(&rules.compare, setup, &pair, &comparison);
    tracing::debug!(
        route = %sample.route,
        shadow = %sample.shadow,
        request_id = %sample.request_id,
        differences = sample.differences.len(),
        "divergent pair"
    );
    if let Ok(mut log) = state.diff_log.lock() {
        if let Some(log) = log.as_mut() {
            if let Err(error) = log.write(&sample) {
                tracing::warn!(error = %error, "cannot write the diff log");
            }
        }
    }
    if let Ok(mut store) = state.samples.lock() {
        store.push(sample);
    }
    if let Some(counter) = compared {
        counter.increment(1);
    }
}

/// A pair's result: any difference that is not noise makes it diverged; otherwise bodies
/// that could not be judged make it unjudged, not a match.
fn verdict(comparison: &compare::Comparison) -> PairVerdict {
    let differences = &comparison.differences;
    if differences.iter().any(|d| d.noise.is_none()) {
        PairVerdict::Diverged
    } else if comparison.body_skipped.is_some() {
        PairVerdict::Unjudged
    } else if differences.is_empty() {
        PairVerdict::Match
    } else {
        PairVerdict::NoiseOnly
    }
}

/// A new noise model for a route label (the endpoint book keeps one per label).
fn noise_model(compare: &CompareConfig, setup: &RouteSetup) -> Arc<NoiseModel> {
    let settings = LearnSettings {
        learn_after: compare.learn_after,
        learn_ratio: compare.learn_ratio,
        max_fields: MAX_NOISE_FIELDS,
        // The namer's bound, plus its overflow endpoint `<route>:other`.
        max_endpoints: compare.endpoints_per_route.saturating_add(1),
    };
    Arc::new(NoiseModel::with_pins(setup.pins.clone(), settings))
}

fn divergent_pair(
    compare: &CompareConfig,
    setup: &RouteSetup,
    pair: &CompletedPair,
    comparison: &compare::Comparison,
) -> DivergentPair {
    let differences = &comparison.differences;
    let (primary_decoded, shadow_decoded) = match &comparison.documents {
        Some((primary, shadow)) => (Some(primary), Some(shadow)),
        None => (None, None),
    };
    let max = compare.body_excerpt_bytes;
    let redactor = &setup.redactor;
    let (request_body, request_cut) = redactor.body(&pair.request.body, max);
    DivergentPair {
        time: humantime::format_rfc3339_millis(pair.completed_at).to_string(),
        route: pair.route.to_string(),
        shadow: pair.shadow.to_string(),
        method: pair.request.method.to_string(),
        path: pair.request.path_and_query.clone(),
        request_id: pair.request.request_id.clone(),
        result: PairVerdict::Diverged.as_str(),
        differences: redactor.differences(differences),
        latency_ms: LatencyPair {
            primary: pair.primary.latency.as_secs_f64() * 1000.0,
            shadow: pair.shadow_response.latency.as_secs_f64() * 1000.0,
        },
        request: MessageExcerpt {
            status: None,
            headers: redactor.fields(pair.request.headers.iter()),
            body: request_body,
            body_truncated: request_cut,
        },
        primary: redactor.response(&pair.primary, primary_decoded, max),
        shadow_response: redactor.response(&pair.shadow_response, shadow_decoded, max),
    }
}
