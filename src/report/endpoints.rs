//! The endpoint view: results per (route label, endpoint, shadow), for
//! `GET /api/v1/endpoints`.
//!
//! A route label says little when it is a catch-all (`default`, a sidecar's one route): the
//! divergence of one endpoint drowns in the traffic of the others. Each pair is named after
//! its endpoint — the route's own template when the router found one, else the path's shape
//! (`GET /users/{id}`, see [`crate::router::shape`]) — with a bounded number of endpoints per
//! route label; the rest is counted under `<route>:other`. The same name keys noise learning.

use crate::router::shape::EndpointNamer;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Endpoint names and result counts of every route label.
pub struct EndpointBook {
    limit: usize,
    labels: Mutex<HashMap<Arc<str>, LabelEndpoints>>,
}

/// Compared pairs by result (the values of the `result` label).
type ResultCounts = BTreeMap<&'static str, u64>;

struct LabelEndpoints {
    namer: EndpointNamer,
    /// Result counts per (endpoint, shadow); endpoints are bounded by the namer, shadows by
    /// the config.
    results: HashMap<(Arc<str>, Arc<str>), ResultCounts>,
}

/// One request, as far as naming its endpoint goes.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The route label (a template or the route's fallback label).
    pub label: &'a Arc<str>,
    /// The route's name (names the overflow endpoint `<route>:other`).
    pub route: &'a str,
    /// Whether the label is one of the route's own templates.
    pub templated: bool,
    /// The request method.
    pub method: &'a str,
    /// The request's path and query.
    pub path: &'a str,
}

/// `GET /api/v1/endpoints` entry.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointSummary {
    /// The route label.
    pub route: String,
    /// `METHOD template`, or `<route>:other` for endpoints past the bound.
    pub endpoint: String,
    /// Shadow upstream.
    pub shadow: String,
    /// Compared pairs by result (the values of the `result` label).
    pub comparisons: ResultCounts,
    /// diverged / compared.
    pub divergence_rate: f64,
    /// Fields learned as noise for this endpoint.
    pub learned_noise: Vec<String>,
}

impl EndpointBook {
    /// A book that keeps at most `limit` endpoints per route label.
    pub fn new(limit: usize) -> EndpointBook {
        EndpointBook {
            limit,
            labels: Mutex::new(HashMap::new()),
        }
    }

    /// The endpoint of a request (allocates only the first time an endpoint is seen, and
    /// for the shape of an untemplated path).
    pub fn name(&self, request: Request<'_>) -> Arc<str> {
        let template = request.templated.then_some(&**request.label);
        match self.labels.lock() {
            Ok(mut labels) => {
                self.label(&mut labels, request)
                    .namer
                    .name(request.method, template, request.path)
            }
            // A poisoned lock means a worker panicked: name without remembering.
            Err(_) => EndpointNamer::new(request.route, self.limit).name(
                request.method,
                template,
                request.path,
            ),
        }
    }

    fn label<'l>(
        &self,
        labels: &'l mut HashMap<Arc<str>, LabelEndpoints>,
        request: Request<'_>,
    ) -> &'l mut LabelEndpoints {
        labels
            .entry(request.label.clone())
            .or_insert_with(|| LabelEndpoints {
                namer: EndpointNamer::new(request.route, self.limit),
                results: HashMap::new(),
            })
    }

    /// Counts a compared pair of `endpoint` (a name [`EndpointBook::name`] returned).
    pub fn record(
        &self,
        label: &Arc<str>,
        endpoint: &Arc<str>,
        shadow: &Arc<str>,
        result: &'static str,
    ) {
        let Ok(mut labels) = self.labels.lock() else {
            return;
        };
        if let Some(entry) = labels.get_mut(label) {
            let counts = entry
                .results
                .entry((endpoint.clone(), shadow.clone()))
                .or_default();
            *counts.entry(result).or_default() += 1;
        }
    }

    /// Every endpoint's results, sorted by route label, endpoint and shadow; `learned` gives
    /// the fields learned per (label, endpoint).
    pub fn view(
        &self,
        learned: &HashMap<String, HashMap<Arc<str>, Vec<String>>>,
    ) -> Vec<EndpointSummary> {
        let Ok(labels) = self.labels.lock() else {
            return Vec::new();
        };
        let mut out: Vec<EndpointSummary> = labels
            .iter()
            .flat_map(|(label, entry)| {
                entry
                    .results
                    .iter()
                    .map(move |((endpoint, shadow), counts)| {
                        let compared: u64 = counts.values().sum();
                        let diverged = counts.get("diverged").copied().unwrap_or(0);
                        EndpointSummary {
                            route: label.to_string(),
                            endpoint: endpoint.to_string(),
                            shadow: shadow.to_string(),
                            comparisons: counts.clone(),
                            divergence_rate: if compared == 0 {
                                0.0
                            } else {
                                diverged as f64 / compared as f64
                            },
                            learned_noise: learned
                                .get(&**label)
                                .and_then(|fields| fields.get(endpoint))
                                .cloned()
                                .unwrap_or_default(),
                        }
                    })
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.route, &a.endpoint, &a.shadow).cmp(&(&b.route, &b.endpoint, &b.shadow))
        });
        out
    }
}
