//! Wiring: bind every socket, then serve until told to stop.
//!
//! Binding and serving are separate steps so callers (the binary, tests, `demo`) learn the
//! real addresses (port 0 in tests) before traffic starts, and pass their own shutdown
//! future: a signal in production, a channel in tests.

use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::generation::{Current, Generation};
use crate::listener::reload::Reloader;
use crate::listener::set::{ListenerSet, Prepared};
use crate::listener::tls::TlsListener;
use crate::reload::{ConfigSource, ReloadControl};
use crate::report::Reporter;
use crate::telemetry::Metrics;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Mutex};

/// How often histogram samples are folded into buckets between scrapes.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

pub use crate::start::StartError;

/// A proxy whose sockets are bound and which is ready to serve.
pub struct BoundApp {
    config: Arc<Config>,
    /// Every listener, bound and set up, not yet served.
    listeners: Vec<Prepared>,
    admin: Option<(TcpListener, SocketAddr)>,
    /// `[admin.tls]`: the admin port's TLS side and the task that re-reads its files.
    admin_tls: Option<(Arc<TlsListener>, Reloader)>,
    /// What both engines serve with, swapped by a reload.
    current: Arc<Current>,
    metrics: Arc<Metrics>,
    report: Arc<Reporter>,
    /// Where a reload reads the config again.
    source: ConfigSource,
}

impl BoundApp {
    /// Binds every listener and the admin port. Fails without serving anything if one cannot be bound.
    pub async fn bind(config: Config) -> Result<BoundApp, StartError> {
        if let Some(problem) = config.admin.start_problem() {
            return Err(StartError::AdminToken(problem));
        }
        for warning in config.warnings() {
            tracing::warn!("{warning}");
        }
        // The composition root: the comparison engine, then the first generation (router,
        // metrics, mirror, upstream clients, both engines' context) over it.
        let metrics = Generation::registry(&config);
        let report = Reporter::start(&config, metrics.clone())?;
        let generation = Generation::first(config, metrics.clone(), &report);
        let config = generation.config().clone();
        let listeners = ListenerSet::default()
            .prepare(&config.listeners, &metrics)
            .await?;
        let admin = match config.admin.address {
            Some(address) => Some(crate::listener::set::bind(address, "admin".to_string()).await?),
            None => None,
        };
        let admin_tls = match (&config.admin.tls, &admin) {
            (Some(settings), Some((_, address))) => {
                let (server, reloader) = TlsListener::new(settings, true, "admin", &metrics)
                    .map_err(|source| StartError::Tls {
                        address: *address,
                        what: "admin".to_string(),
                        source,
                    })?;
                Some((Arc::new(server), reloader))
            }
            _ => None,
        };
        Ok(BoundApp {
            config,
            listeners,
            admin,
            admin_tls,
            current: Arc::new(Current::new(generation)),
            metrics,
            report,
            source: ConfigSource::default(),
        })
    }

    /// Where a reload (SIGHUP, `POST /api/v1/reload`) reads the config again: the file and
    /// the command-line flags it was loaded with. Without it a reload is refused.
    pub fn reloads_from(mut self, source: ConfigSource) -> BoundApp {
        self.source = source;
        self
    }

    /// The bound live-traffic addresses, in config order.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(Prepared::bound).collect()
    }

    /// The bound admin address, if the admin port is enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(_, address)| *address)
    }

    /// The comparison engine's results (for in-process readers such as `demo`).
    pub fn report(&self) -> Arc<Reporter> {
        self.report.clone()
    }

    /// The proxy's metrics (for in-process readers such as `demo`).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Serves until `shutdown` resolves, then drains: readiness goes false, listeners stop
    /// accepting, in-flight requests and upgraded connections get the grace period (those
    /// still open at its end are closed), and the admin port closes last.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let grace = self.config.shutdown.grace_period;
        let mut listeners = ListenerSet::default();
        listeners.commit(self.listeners, &self.current, &stop_rx, grace);
        let listeners = Arc::new(Mutex::new(listeners));
        let control = Arc::new(ReloadControl::new(
            self.source,
            self.current.clone(),
            self.report.clone(),
            listeners.clone(),
            stop_rx.clone(),
            grace,
        ));
        let state = Arc::new(AdminState::new(
            &self.config.admin,
            self.metrics.clone(),
            self.report.clone(),
            self.current.load().context().mirror().control().clone(),
        ));
        state.install_reload(control.clone());
        let hangups = tokio::spawn(crate::reload::on_hangup(control, stop_rx.clone()));
        let (admin_stop_tx, admin_stop_rx) = watch::channel(false);
        let admin_tls = self
            .admin_tls
            .map(|(server, files)| (server, tokio::spawn(files.run(stop_rx.clone()))));
        let admin_task = self.admin.map(|(listener, address)| {
            let tls = admin_tls.as_ref().map(|(server, _)| server.clone());
            tracing::info!(%address, tls = tls.is_some(), "admin listening");
            tokio::spawn(admin::serve(listener, state.clone(), tls, admin_stop_rx))
        });
        let upkeep = {
            let metrics = self.metrics.clone();
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
                loop {
                    ticker.tick().await;
                    metrics.run_upkeep();
                }
            })
        };
        self.metrics.config_reloaded(true, false);
        self.current.load().context().mirror().start();
        state.ready.store(true, Ordering::Release);

        shutdown.await;
        tracing::info!(grace = ?grace, "shutting down");
        // Taken before the listeners start their own grace periods, so an upgraded connection
        // cut with its HTTP/2 connection at theirs is past this one.
        let deadline = tokio::time::Instant::now() + grace;
        state.ready.store(false, Ordering::Release);
        let _ = stop_tx.send(true);
        hangups.abort();
        // Spliced connections get the same grace period as in-flight requests.
        let splices = self.current.load().context().splices().clone();
        tokio::join!(
            async { listeners.lock().await.join().await },
            splices.drain(deadline)
        );
        // Those that switched while the listeners drained (no connection can switch now).
        splices.drain(deadline).await;
        let _ = admin_stop_tx.send(true);
        if let Some(task) = admin_task {
            let _ = task.await;
        }
        upkeep.abort();
        if let Some((_, files)) = admin_tls {
            files.abort();
        }
        self.current.load().context().mirror().stop();
        self.report.stop();
        tracing::info!("stopped");
    }
}
