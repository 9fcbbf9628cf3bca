//! The mirror side of shadowtap on its own, for a Rust service (axum, tonic) that shadows its
//! own traffic in-process through [`MirrorLayer`]: what the app builds around the proxy —
//! router, metrics, shadow dispatchers, comparison engine — built from a [`Config`] without
//! a listener or a primary upstream.
//!
//! Kept apart from [`crate::layer`] so the layer, which the proxy's live path uses, depends
//! only on the mirror's own modules and not on the comparison engine.

use crate::config::Config;
use crate::layer::MirrorLayer;
use crate::report::{ReportError, Reporter};
use crate::router::Router;
use crate::shadow::Mirror;
use crate::telemetry::Metrics;
use std::sync::Arc;

/// The mirror side of shadowtap, built from a [`Config`] for a service that shadows its own
/// traffic: the router, the metrics, the shadow dispatchers and the comparison engine. The
/// config's routes say what is mirrored where; their `primary` names the service itself and
/// is never dialled.
pub struct Shadowing {
    layer: MirrorLayer,
    metrics: Arc<Metrics>,
    report: Arc<Reporter>,
}

impl Shadowing {
    /// Builds the mirror side and starts the shadow dispatchers and comparison workers.
    /// Call it inside a tokio runtime: the dispatchers are tasks on it.
    pub fn start(config: &Config) -> Result<Shadowing, ReportError> {
        let router = Router::new(&config.routes);
        let metrics = Arc::new(Metrics::new(
            router.labels(),
            &Mirror::route_shadow_names(config),
        ));
        let report = Reporter::start(config, metrics.clone())?;
        let sink = report.sink(config, router.labels(), metrics.clone());
        let mirror = Arc::new(Mirror::new(config, metrics.clone(), Some(sink), None));
        mirror.start();
        let layer = MirrorLayer::new(mirror, config.mirror.max_response_body_bytes)
            .with_router(Arc::new(router));
        Ok(Shadowing {
            layer,
            metrics,
            report,
        })
    }

    /// The layer to wrap the service in (as many times as needed: it is shared).
    pub fn layer(&self) -> MirrorLayer {
        self.layer.clone()
    }

    /// The metrics the mirror records (`render()` gives the Prometheus text).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The comparison results: per route and shadow, divergent samples, endpoints.
    pub fn report(&self) -> &Arc<Reporter> {
        &self.report
    }

    /// Stops the shadow dispatchers and the comparison workers (once live traffic is done).
    pub fn stop(&self) {
        self.layer.mirror().stop();
        self.report.stop();
    }
}
