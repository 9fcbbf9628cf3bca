//! Runtime mirror switches: pause and resume mirroring globally, per route or per shadow,
//! and override a shadow's `percent`, without a restart (`PUT /api/v1/mirror`).
//!
//! The switches live in one [`MirrorControl`], shared by `Arc`, keyed by route name and
//! shadow name. A [`super::Mirror`] is built *against* a control ([`MirrorControl::adopt`])
//! and keeps direct handles to the switches of its routes and shadows, so the sampling
//! decision reads a few relaxed atomics: no lock, no allocation, no map lookup per request.
//! A mirror rebuilt after a reload adopts the same control: the switches of routes and
//! shadows that still exist carry over, new ones start resumed at the configured percent,
//! and a percent override is dropped when the reload changes that shadow's configured
//! percent (the edited file wins over an older runtime change).

use crate::config::Config;
use crate::router::Router;
use crate::telemetry::metrics::MIRROR_PAUSED;
use crate::telemetry::Metrics;
use metrics::Gauge;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The bit pattern meaning "no percent override" (a NaN no valid percent has).
const NO_OVERRIDE: u64 = u64::MAX;

/// A route's own pause switch.
#[derive(Debug, Default)]
pub struct RouteSwitch {
    paused: AtomicBool,
}

impl RouteSwitch {
    /// Whether mirroring from this route is paused (on its own account).
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }
}

/// One (route, shadow) pair's switches.
#[derive(Debug)]
pub struct ShadowSwitch {
    paused: AtomicBool,
    /// The runtime percent as `f64` bits, or [`NO_OVERRIDE`].
    percent: AtomicU64,
}

impl Default for ShadowSwitch {
    fn default() -> ShadowSwitch {
        ShadowSwitch {
            paused: AtomicBool::new(false),
            percent: AtomicU64::new(NO_OVERRIDE),
        }
    }
}

impl ShadowSwitch {
    /// Whether mirroring to this shadow from this route is paused (on its own account).
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// The runtime percent, when one overrides the configured one.
    pub fn percent_override(&self) -> Option<f64> {
        match self.percent.load(Ordering::Relaxed) {
            NO_OVERRIDE => None,
            bits => Some(f64::from_bits(bits)),
        }
    }

    fn set_percent(&self, percent: Option<f64>) {
        let bits = percent.map_or(NO_OVERRIDE, |percent| percent.clamp(0.0, 100.0).to_bits());
        self.percent.store(bits, Ordering::Relaxed);
    }
}

/// The switches a compiled route holds: its own, and one per shadow in policy order.
pub struct RouteHandles {
    /// The route's pause switch.
    pub route: Arc<RouteSwitch>,
    /// Each shadow's switches, in the order of the route's `shadows`.
    pub shadows: Vec<Arc<ShadowSwitch>>,
}

struct ShadowEntry {
    name: String,
    config_percent: f64,
    switch: Arc<ShadowSwitch>,
    gauge: Option<Gauge>,
}

struct RouteEntry {
    name: String,
    /// The route's metric labels (templates, then its fallback), so `/api/v1/routes`
    /// entries, which are per label, can show their route's switches.
    labels: Vec<String>,
    switch: Arc<RouteSwitch>,
    shadows: Vec<ShadowEntry>,
}

/// Every runtime mirror switch, by route name and shadow name.
#[derive(Default)]
pub struct MirrorControl {
    paused_all: AtomicBool,
    /// Locked only by the admin API and when a mirror is built, never per request.
    routes: Mutex<Vec<RouteEntry>>,
}

/// A change asked for by `PUT /api/v1/mirror`: `route` and `shadow` narrow it (absent means
/// all); each of `paused` and `percent` is applied when given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MirrorChange {
    /// A route's name, or every route.
    pub route: Option<String>,
    /// A shadow upstream's name, or every shadow.
    pub shadow: Option<String>,
    /// Pause (`true`) or resume (`false`).
    pub paused: Option<bool>,
    /// The share of requests mirrored, `0..=100` (the caller checks the range).
    pub percent: Option<f64>,
}

/// Why a change names nothing that exists (the admin API answers 404).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// No route with this name mirrors.
    #[error("no mirrored route is named {0:?}")]
    UnknownRoute(String),
    /// No mirrored route has a shadow with this name.
    #[error("no mirrored route has a shadow named {0:?}")]
    UnknownShadow(String),
    /// The named route has no shadow with this name.
    #[error("route {route:?} has no shadow named {shadow:?}")]
    UnknownShadowOnRoute {
        /// The route named.
        route: String,
        /// The shadow named.
        shadow: String,
    },
}

/// `GET /api/v1/mirror`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ControlView {
    /// Whether every route is paused.
    pub paused: bool,
    /// Each mirrored route, in config order.
    pub routes: Vec<RouteView>,
}

/// One route in [`ControlView`].
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RouteView {
    /// The route's name.
    pub route: String,
    /// Whether the route itself is paused.
    pub paused: bool,
    /// Its shadows, in policy order.
    pub shadows: Vec<ShadowView>,
}

/// One (route, shadow) pair's state.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ShadowView {
    /// The shadow upstream's name.
    pub shadow: String,
    /// Whether copies to it from this route are skipped: paused globally, for the route,
    /// or for the shadow.
    pub paused: bool,
    /// The percent in force.
    pub percent: f64,
    /// The percent in the config file.
    pub config_percent: f64,
    /// Whether `percent` is a runtime override.
    pub percent_overridden: bool,
}

impl MirrorControl {
    /// A control with everything resumed and no overrides.
    pub fn new() -> Arc<MirrorControl> {
        Arc::new(MirrorControl::default())
    }

    /// Whether all mirroring is paused.
    pub fn paused_all(&self) -> bool {
        self.paused_all.load(Ordering::Relaxed)
    }

    fn entries(&self) -> MutexGuard<'_, Vec<RouteEntry>> {
        // The registry holds plain data: a panic while it was held leaves it usable.
        self.routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers the routes and shadows of `config` and returns, per route (config order),
    /// the switches its compiled policy reads (`None` for a route that does not mirror).
    /// Pairs that existed before keep their switches; `metrics` gets the pause gauges.
    pub fn adopt(&self, config: &Config, metrics: &Metrics) -> Vec<Option<RouteHandles>> {
        let router = Router::new(&config.routes);
        let mut entries = self.entries();
        let mut old = std::mem::take(&mut *entries);
        let mut handles = Vec::with_capacity(config.routes.len());
        for (route, labels) in config.routes.iter().zip(router.labels()) {
            let Some(mirror) = &route.mirror else {
                handles.push(None);
                continue;
            };
            let previous = old
                .iter()
                .position(|entry| entry.name == route.name)
                .map(|index| old.swap_remove(index));
            let (switch, mut old_shadows) = match previous {
                Some(entry) => (entry.switch, entry.shadows),
                None => (Arc::default(), Vec::new()),
            };
            let shadows: Vec<ShadowEntry> = mirror
                .shadows
                .iter()
                .map(|policy| {
                    let name = policy.upstream.name().to_string();
                    let kept = old_shadows
                        .iter()
                        .position(|entry| entry.name == name)
                        .map(|index| old_shadows.swap_remove(index));
                    let switch = match kept {
                        Some(entry) => {
                            if entry.config_percent.to_bits() != policy.percent.to_bits() {
                                entry.switch.set_percent(None);
                            }
                            entry.switch
                        }
                        None => Arc::default(),
                    };
                    let gauge = metrics.gauge(
                        MIRROR_PAUSED,
                        &[("route", route.name.as_str()), ("shadow", name.as_str())],
                    );
                    ShadowEntry {
                        name,
                        config_percent: policy.percent,
                        switch,
                        gauge: Some(gauge),
                    }
                })
                .collect();
            handles.push(Some(RouteHandles {
                route: switch.clone(),
                shadows: shadows.iter().map(|entry| entry.switch.clone()).collect(),
            }));
            entries.push(RouteEntry {
                name: route.name.clone(),
                labels: labels.clone(),
                switch,
                shadows,
            });
        }
        self.refresh_gauges(&entries);
        handles
    }

    /// Applies a change; nothing changes when it names an unknown route or shadow.
    pub fn apply(&self, change: &MirrorChange) -> Result<ControlView, ControlError> {
        let entries = self.entries();
        let routes: Vec<&RouteEntry> = match &change.route {
            Some(name) => vec![entries
                .iter()
                .find(|entry| entry.name == *name)
                .ok_or_else(|| ControlError::UnknownRoute(name.clone()))?],
            None => entries.iter().collect(),
        };
        let shadows: Vec<&ShadowEntry> = routes
            .iter()
            .flat_map(|route| route.shadows.iter())
            .filter(|entry| {
                change
                    .shadow
                    .as_ref()
                    .is_none_or(|name| entry.name == *name)
            })
            .collect();
        if let Some(name) = &change.shadow {
            if shadows.is_empty() {
                return Err(match &change.route {
                    Some(route) => ControlError::UnknownShadowOnRoute {
                        route: route.clone(),
                        shadow: name.clone(),
                    },
                    None => ControlError::UnknownShadow(name.clone()),
                });
            }
        }
        if let Some(paused) = change.paused {
            match (&change.route, &change.shadow, paused) {
                // A pause is set at the level it names; a resume clears that level and
                // every narrower one under it, so "resume" undoes any pause beneath.
                (_, Some(_), _) => shadows
                    .iter()
                    .for_each(|entry| entry.switch.paused.store(paused, Ordering::Relaxed)),
                (Some(_), None, true) => routes
                    .iter()
                    .for_each(|route| route.switch.paused.store(true, Ordering::Relaxed)),
                (None, None, true) => self.paused_all.store(true, Ordering::Relaxed),
                (route, None, false) => {
                    if route.is_none() {
                        self.paused_all.store(false, Ordering::Relaxed);
                    }
                    for route in &routes {
                        route.switch.paused.store(false, Ordering::Relaxed);
                    }
                    for entry in &shadows {
                        entry.switch.paused.store(false, Ordering::Relaxed);
                    }
                }
            }
        }
        if let Some(percent) = change.percent {
            for entry in &shadows {
                entry.switch.set_percent(Some(percent));
            }
        }
        tracing::info!(
            route = change.route.as_deref().unwrap_or("*"),
            shadow = change.shadow.as_deref().unwrap_or("*"),
            paused = ?change.paused,
            percent = ?change.percent,
            "mirror control changed"
        );
        self.refresh_gauges(&entries);
        Ok(self.view_of(&entries))
    }

    /// Every switch, for `GET /api/v1/mirror`.
    pub fn view(&self) -> ControlView {
        self.view_of(&self.entries())
    }

    /// The state of the (route, shadow) pair a `/api/v1/routes` entry is about: `label` is
    /// one of the route's metric labels.
    pub fn for_label(&self, label: &str, shadow: &str) -> Option<ShadowView> {
        let entries = self.entries();
        let route = entries
            .iter()
            .find(|route| route.labels.iter().any(|known| known == label))?;
        let entry = route.shadows.iter().find(|entry| entry.name == shadow)?;
        Some(self.shadow_view(route, entry))
    }

    /// The name of the route whose metric labels include `label` (what `PUT /api/v1/noise`
    /// and `PUT /api/v1/mirror` take, where `/api/v1/routes` shows labels).
    pub fn route_name_of(&self, label: &str) -> Option<String> {
        self.entries()
            .iter()
            .find(|route| route.labels.iter().any(|known| known == label))
            .map(|route| route.name.clone())
    }

    fn shadow_view(&self, route: &RouteEntry, entry: &ShadowEntry) -> ShadowView {
        let overridden = entry.switch.percent_override();
        ShadowView {
            shadow: entry.name.clone(),
            paused: self.paused_all() || route.switch.paused() || entry.switch.paused(),
            percent: overridden.unwrap_or(entry.config_percent),
            config_percent: entry.config_percent,
            percent_overridden: overridden.is_some(),
        }
    }

    fn view_of(&self, entries: &[RouteEntry]) -> ControlView {
        ControlView {
            paused: self.paused_all(),
            routes: entries
                .iter()
                .map(|route| RouteView {
                    route: route.name.clone(),
                    paused: route.switch.paused(),
                    shadows: route
                        .shadows
                        .iter()
                        .map(|entry| self.shadow_view(route, entry))
                        .collect(),
                })
                .collect(),
        }
    }

    fn refresh_gauges(&self, entries: &[RouteEntry]) {
        for route in entries {
            for entry in &route.shadows {
                if let Some(gauge) = &entry.gauge {
                    let paused = self.shadow_view(route, entry).paused;
                    gauge.set(f64::from(u8::from(paused)));
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "control_tests.rs"]
mod tests;
