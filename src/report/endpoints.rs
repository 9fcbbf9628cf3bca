//! The endpoint view: results per (route label, endpoint, shadow), for
//! `GET /api/v1/endpoints`.
//!
//! A route label says little when it is a catch-all (`default`, a sidecar's one route): the
//! divergence of one endpoint drowns in the traffic of the others. Each pair is named after
//! its endpoint — the route's own template when the router found one, else the path's shape
//! (`GET /users/{id}`, see [`crate::router::shape`]) — with a bounded number of endpoints per
//! route label; the rest is counted under `<route>:other`. The same name keys noise learning,
//! and the book keeps each label's noise model next to its names, so a pair finds both with
//! one lock and no hash of its label.
//!
//! Everything is found by index — the pair's (route, label) key, the endpoint's id, the
//! shadow's position — so a pair costs one hash of its endpoint name, not one per map.

use crate::compare::noise::NoiseModel;
use crate::router::shape::{Endpoint, EndpointNamer};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Compared pairs by result (the values of the `result` label), in first-seen order.
type ResultCounts = Vec<(&'static str, u64)>;

/// Endpoint names and result counts of every route label.
pub struct EndpointBook {
    limit: usize,
    /// By slot: a route's slot, then its label's (see [`EndpointBook::slots`]).
    labels: Mutex<Vec<Vec<Option<LabelEndpoints>>>>,
    /// The slot of each route name and label ever configured: a reload that keeps a route
    /// keeps its slots, so its names, results and learned noise carry on.
    slots: Mutex<SlotNames>,
}

/// Slots by route name, and by label within a route.
#[derive(Default)]
struct SlotNames {
    routes: Vec<(String, Vec<String>)>,
}

impl SlotNames {
    fn slot(&mut self, route: &str, label: &str) -> (usize, usize) {
        let route_slot = match self.routes.iter().position(|(name, _)| name == route) {
            Some(slot) => slot,
            None => {
                self.routes.push((route.to_string(), Vec::new()));
                self.routes.len() - 1
            }
        };
        let Some((_, labels)) = self.routes.get_mut(route_slot) else {
            return (route_slot, 0);
        };
        let label_slot = match labels.iter().position(|known| known == label) {
            Some(slot) => slot,
            None => {
                labels.push(label.to_string());
                labels.len() - 1
            }
        };
        (route_slot, label_slot)
    }
}

struct LabelEndpoints {
    label: Arc<str>,
    namer: EndpointNamer,
    noise: Arc<NoiseModel>,
    /// Shadow names by position in the route's policy.
    shadows: Vec<Option<Arc<str>>>,
    /// Result counts by endpoint id, then shadow position.
    results: Vec<Vec<ResultCounts>>,
}

/// One request, as far as naming its endpoint goes.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The pair's slot ([`EndpointBook::slots`]).
    pub key: (usize, usize),
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
    pub comparisons: BTreeMap<&'static str, u64>,
    /// diverged / compared.
    pub divergence_rate: f64,
    /// Fields learned as noise for this endpoint.
    pub learned_noise: Vec<String>,
}

/// The element at `index`, created (with the elements before it) when missing.
fn slot<T>(items: &mut Vec<T>, index: usize, make: impl FnMut() -> T) -> Option<&mut T> {
    if items.len() <= index {
        items.resize_with(index.saturating_add(1), make);
    }
    items.get_mut(index)
}

impl EndpointBook {
    /// A book that keeps at most `limit` endpoints per route label.
    pub fn new(limit: usize) -> EndpointBook {
        EndpointBook {
            limit,
            labels: Mutex::new(Vec::new()),
            slots: Mutex::new(SlotNames::default()),
        }
    }

    /// The slot of every (route, label) of a config, by route index then label index:
    /// `routes` gives each route's name and labels. The same name and label get the same
    /// slot in every config given.
    pub fn slots<'a>(
        &self,
        routes: impl IntoIterator<Item = (&'a str, &'a [String])>,
    ) -> Vec<Vec<(usize, usize)>> {
        let mut names = match self.slots.lock() {
            Ok(names) => names,
            Err(poisoned) => poisoned.into_inner(),
        };
        routes
            .into_iter()
            .map(|(route, labels)| {
                labels
                    .iter()
                    .map(|label| names.slot(route, label))
                    .collect()
            })
            .collect()
    }

    /// The endpoint of a request (allocates only the first time an endpoint is seen), and
    /// its route label's noise model (`new_model` makes it the first time the label is seen).
    pub fn name(
        &self,
        request: Request<'_>,
        new_model: impl Fn() -> Arc<NoiseModel>,
    ) -> (Endpoint, Arc<NoiseModel>) {
        let template = request.templated.then_some(&**request.label);
        let name = |namer: &mut EndpointNamer| namer.name(request.method, template, request.path);
        let Ok(mut labels) = self.labels.lock() else {
            // A poisoned lock means a worker panicked: name and learn without remembering.
            let endpoint = name(&mut EndpointNamer::new(request.route, self.limit));
            return (endpoint, new_model());
        };
        let (route, label) = request.key;
        let entry = slot(&mut labels, route, Vec::new)
            .and_then(|labels| slot(labels, label, || None))
            .map(|entry| {
                entry.get_or_insert_with(|| LabelEndpoints {
                    label: request.label.clone(),
                    namer: EndpointNamer::new(request.route, self.limit),
                    noise: new_model(),
                    shadows: Vec::new(),
                    results: Vec::new(),
                })
            });
        match entry {
            Some(entry) => (name(&mut entry.namer), entry.noise.clone()),
            // Unreachable: `slot` only fails when an index cannot grow the vector.
            None => (
                Endpoint {
                    id: 0,
                    name: Arc::from(request.route),
                },
                new_model(),
            ),
        }
    }

    /// Every route label's noise model.
    pub fn models(&self) -> Vec<(Arc<str>, Arc<NoiseModel>)> {
        let Ok(labels) = self.labels.lock() else {
            return Vec::new();
        };
        labels
            .iter()
            .flatten()
            .flatten()
            .map(|entry| (entry.label.clone(), entry.noise.clone()))
            .collect()
    }

    /// Counts a compared pair of `endpoint` (as [`EndpointBook::name`] returned it) for the
    /// shadow at `position` in the route's policy.
    pub fn record(
        &self,
        key: (usize, usize),
        endpoint: &Endpoint,
        (position, shadow): (usize, &Arc<str>),
        result: &'static str,
    ) {
        let Ok(mut labels) = self.labels.lock() else {
            return;
        };
        let Some(entry) = labels
            .get_mut(key.0)
            .and_then(|labels| labels.get_mut(key.1))
            .and_then(Option::as_mut)
        else {
            return;
        };
        if let Some(name) = slot(&mut entry.shadows, position, || None) {
            if name.as_ref() != Some(shadow) {
                // A reload put another shadow at this position: its counts start afresh.
                *name = Some(shadow.clone());
                for by_shadow in &mut entry.results {
                    if let Some(counts) = by_shadow.get_mut(position) {
                        counts.clear();
                    }
                }
            }
        }
        let Some(counts) = slot(&mut entry.results, endpoint.id, Vec::new)
            .and_then(|shadows| slot(shadows, position, Vec::new))
        else {
            return;
        };
        match counts.iter_mut().find(|(name, _)| *name == result) {
            Some((_, count)) => *count += 1,
            None => counts.push((result, 1)),
        }
    }

    /// Every endpoint's results with the fields learned there, sorted by route label,
    /// endpoint and shadow.
    pub fn view(&self) -> Vec<EndpointSummary> {
        let Ok(labels) = self.labels.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in labels.iter().flatten().flatten() {
            let names = entry.namer.names();
            let learned = entry.noise.learned_fields();
            for (id, by_shadow) in entry.results.iter().enumerate() {
                let Some(endpoint) = names.get(id) else {
                    continue;
                };
                for (position, counts) in by_shadow.iter().enumerate() {
                    let Some(Some(shadow)) = entry.shadows.get(position) else {
                        continue;
                    };
                    if counts.is_empty() {
                        continue;
                    }
                    let comparisons: BTreeMap<&'static str, u64> = counts.iter().copied().collect();
                    let compared: u64 = comparisons.values().sum();
                    let diverged = comparisons.get("diverged").copied().unwrap_or(0);
                    out.push(EndpointSummary {
                        route: entry.label.to_string(),
                        endpoint: endpoint.to_string(),
                        shadow: shadow.to_string(),
                        comparisons,
                        divergence_rate: if compared == 0 {
                            0.0
                        } else {
                            diverged as f64 / compared as f64
                        },
                        learned_noise: learned.get(endpoint).cloned().unwrap_or_default(),
                    });
                }
            }
        }
        out.sort_by(|a, b| {
            (&a.route, &a.endpoint, &a.shadow).cmp(&(&b.route, &b.endpoint, &b.shadow))
        });
        out
    }
}
