//! Config reload, on SIGHUP and `POST /api/v1/reload`: the file is read and validated as
//! `shadowtap check` does, the listeners it adds are bound, and only when all of that worked
//! is the new generation swapped in. A bad file changes nothing, and its errors are returned.
//!
//! What a reload keeps and what it resets is listed in README.md ("Changing a running
//! shadowtap").

use crate::config::{settings_text, Config, ConfigError, Overrides};
use crate::generation::Current;
use crate::listener::set::ListenerSet;
use crate::report::Reporter;
use crate::telemetry::logging::ErrorChain;
use crate::telemetry::Metrics;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Mutex};

/// Where the config comes from: read again by every reload.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// The file (`None`: flags alone, nothing to re-read).
    pub path: Option<PathBuf>,
    /// The command-line flags, applied again over the file.
    pub overrides: Overrides,
}

/// A reload that took effect: what changed.
#[derive(Debug, Clone, Serialize)]
pub struct Reloaded {
    /// The new generation's number (1 is the start).
    pub generation: u64,
    /// One line per change (`listener added 127.0.0.1:8081`, `routes: 3 -> 4`, ...).
    pub changes: Vec<String>,
}

/// A reload that was refused: the previous config stays in force.
#[derive(Debug, Clone, Serialize)]
pub struct Refused {
    /// Every problem, as `<key>: <reason>` where a key is known.
    pub errors: Vec<String>,
}

/// Reloads the running proxy's config.
pub struct ReloadControl {
    source: ConfigSource,
    current: Arc<Current>,
    report: Arc<Reporter>,
    metrics: Arc<Metrics>,
    listeners: Arc<Mutex<ListenerSet>>,
    shutdown: watch::Receiver<bool>,
    grace: Duration,
}

impl ReloadControl {
    /// The control over a proxy's current generation and listeners.
    pub(crate) fn new(
        source: ConfigSource,
        current: Arc<Current>,
        report: Arc<Reporter>,
        listeners: Arc<Mutex<ListenerSet>>,
        shutdown: watch::Receiver<bool>,
        grace: Duration,
    ) -> ReloadControl {
        let metrics = current.load().metrics().clone();
        ReloadControl {
            source,
            current,
            report,
            metrics,
            listeners,
            shutdown,
            grace,
        }
    }

    /// Reads, validates and applies the config. Reloads run one at a time.
    pub async fn reload(&self) -> Result<Reloaded, Refused> {
        let mut listeners = self.listeners.lock().await;
        let result = self.apply(&mut listeners).await;
        match &result {
            Ok(reloaded) => {
                self.metrics.config_reloaded(true, true);
                tracing::info!(
                    generation = reloaded.generation,
                    changes = %reloaded.changes.join("; "),
                    "config reloaded"
                );
            }
            Err(refused) => {
                self.metrics.config_reloaded(false, true);
                tracing::error!(
                    errors = %refused.errors.join("; "),
                    "config reload refused; the previous config stays in force"
                );
            }
        }
        result
    }

    async fn apply(&self, listeners: &mut ListenerSet) -> Result<Reloaded, Refused> {
        let Some(path) = &self.source.path else {
            return Err(Refused {
                errors: vec!["no config file to reload: shadowtap runs from flags alone".into()],
            });
        };
        let config = Config::load(Some(path), &self.source.overrides).map_err(refused)?;
        let previous = self.current.load();
        let mut changes = unchangeable(previous.config(), &config);
        let prepared = listeners
            .prepare(&config.listeners, &self.metrics)
            .await
            .map_err(|error| Refused {
                errors: vec![ErrorChain(&error).to_string()],
            })?;
        changes.extend(summary(previous.config(), &config));
        let next = previous.next(config, &self.report);
        next.context().mirror().start();
        let number = next.number();
        let replaced = self.current.replace(next);
        replaced
            .context()
            .mirror()
            .retire_unused(self.current.load().context().mirror());
        let listener_changes =
            listeners.commit(prepared, &self.current, &self.shutdown, self.grace);
        for (what, addresses) in [
            ("added", &listener_changes.added),
            ("changed", &listener_changes.changed),
            ("removed (draining)", &listener_changes.removed),
        ] {
            for address in addresses {
                changes.push(format!("listener {what}: {address}"));
            }
        }
        Ok(Reloaded {
            generation: number,
            changes,
        })
    }
}

/// The problems of a config that cannot be used.
fn refused(error: ConfigError) -> Refused {
    let errors = match error.problems() {
        [] => vec![ErrorChain(&error).to_string()],
        problems => problems.iter().map(ToString::to_string).collect(),
    };
    Refused { errors }
}

/// Settings a reload cannot change in a running process: noted, and left as they are.
fn unchangeable(old: &Config, new: &Config) -> Vec<String> {
    let mut notes = Vec::new();
    if settings_text(&old.admin) != settings_text(&new.admin) {
        notes.push("[admin] changed: takes effect at the next restart".to_string());
    }
    if settings_text(&old.runtime) != settings_text(&new.runtime) {
        notes.push("runtime changed: takes effect at the next restart".to_string());
    }
    if settings_text(&old.logging) != settings_text(&new.logging) {
        notes.push("logging changed: takes effect at the next restart".to_string());
    }
    let structural = |compare: &crate::config::CompareConfig| {
        (
            compare.workers,
            compare.queue_capacity,
            compare.diff_log.clone(),
            compare.samples_per_route,
            compare.samples_total,
            (compare.history_minutes, compare.history_series),
        )
    };
    if structural(&old.compare) != structural(&new.compare) {
        notes.push(
            "compare.workers, queue_capacity, diff_log, samples_per_route, samples_total, history_minutes or history_series changed: \
             take effect at the next restart"
                .to_string(),
        );
    }
    notes
}

/// One line per part of the config that differs.
fn summary(old: &Config, new: &Config) -> Vec<String> {
    let mut lines = Vec::new();
    let names = |config: &Config| -> Vec<String> {
        config
            .routes
            .iter()
            .map(|route| route.name.clone())
            .collect()
    };
    let (old_routes, new_routes) = (names(old), names(new));
    for name in new_routes.iter().filter(|name| !old_routes.contains(name)) {
        lines.push(format!("route added: {name}"));
    }
    for name in old_routes.iter().filter(|name| !new_routes.contains(name)) {
        lines.push(format!("route removed: {name}"));
    }
    for route in &new.routes {
        let Some(before) = old.routes.iter().find(|old| old.name == route.name) else {
            continue;
        };
        if settings_text(before) != settings_text(route) {
            lines.push(format!("route changed: {}", route.name));
        }
    }
    for (name, upstream) in new.upstreams.iter() {
        match old.upstreams.iter().find(|(old, _)| *old == name) {
            None => lines.push(format!("upstream added: {name}")),
            Some((_, before)) if settings_text(before) != settings_text(upstream) => {
                lines.push(format!("upstream changed: {name}"))
            }
            Some(_) => {}
        }
    }
    for (name, _) in old.upstreams.iter() {
        if !new.upstreams.iter().any(|(new, _)| new == name) {
            lines.push(format!("upstream removed: {name}"));
        }
    }
    if settings_text(&old.mirror) != settings_text(&new.mirror) {
        lines.push("mirror settings changed".to_string());
    }
    lines
}

impl crate::admin::reload_api::ConfigReload for ReloadControl {
    fn reload(
        &self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = crate::admin::reload_api::ReloadOutcome> + Send + '_>,
    > {
        use crate::admin::reload_api::ReloadOutcome;
        Box::pin(async move {
            match ReloadControl::reload(self).await {
                Ok(reloaded) => ReloadOutcome::Applied {
                    generation: reloaded.generation,
                    changes: reloaded.changes,
                },
                Err(refused) => ReloadOutcome::Refused(refused.errors),
            }
        })
    }
}

/// Reloads on every SIGHUP until shutdown. (Certificate files are also re-read on SIGHUP by
/// each TLS listener, see [`crate::listener::reload`].)
pub async fn on_hangup(control: Arc<ReloadControl>, mut shutdown: watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload with POST /api/v1/reload");
            return;
        };
        loop {
            tokio::select! {
                received = hangups.recv() => {
                    if received.is_none() {
                        return;
                    }
                    tracing::info!("SIGHUP: reloading the config");
                    // The outcome is logged and counted by `reload`.
                    let _ = control.reload().await;
                }
                _ = crate::shutdown::flagged(&mut shutdown) => return,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (control, crate::shutdown::flagged(&mut shutdown).await);
    }
}
