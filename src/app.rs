//! Wiring: bind every socket, then serve until told to stop.
//!
//! Binding and serving are separate steps so callers (the binary, tests, `demo`) learn the
//! real addresses (port 0 in tests) before traffic starts, and pass their own shutdown
//! future: a signal in production, a channel in tests.

use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::context::Context;
use crate::forward::UpstreamClient;
use crate::listener;
use crate::listener::reload::Reloader;
use crate::listener::tls::TlsListener;
use crate::message::pair::PairSink;
use crate::proxy::{Proxy, RequestBody};
use crate::report::{ReportError, Reporter};
use crate::router::Router;
use crate::shadow::Mirror;
use crate::telemetry::Metrics;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How often histogram samples are folded into buckets between scrapes.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener address could not be bound (in use, no permission).
    #[error("cannot listen on {address} ({what})")]
    Bind {
        /// The address from the config.
        address: SocketAddr,
        /// `listeners[0]` or `admin`.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A TLS listener's certificates or settings could not be used.
    #[error("cannot set up TLS on {address} ({what})")]
    Tls {
        /// The listener's bound address.
        address: SocketAddr,
        /// `listeners[0]`.
        what: String,
        /// Which file, and why.
        #[source]
        source: crate::listener::tls::TlsSetupError,
    },
    /// The admin port's token file named in the config cannot be read.
    #[error("cannot start the admin port: {0}")]
    AdminToken(String),
    /// The comparison engine could not start (diff log, worker threads).
    #[error("cannot start the comparison engine")]
    Report(#[from] ReportError),
}

/// A proxy whose sockets are bound and which is ready to serve.
pub struct BoundApp {
    config: Config,
    listeners: Vec<(TcpListener, SocketAddr)>,
    /// Per listener, in config order: its TLS side and the task that reloads its files.
    tls: Vec<Option<(Arc<TlsListener>, Reloader)>>,
    admin: Option<(TcpListener, SocketAddr)>,
    /// What both engines serve with.
    context: Arc<Context>,
    /// The hyper engine (the native one is started per connection by the listener).
    proxy: Arc<Proxy>,
    report: Arc<Reporter>,
}

async fn bind(address: SocketAddr, what: String) -> Result<(TcpListener, SocketAddr), StartError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| StartError::Bind {
            address,
            what: what.clone(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| StartError::Bind {
        address,
        what,
        source,
    })?;
    Ok((listener, local))
}

/// The composition root: builds the router, the metrics, the mirror and one pool of
/// sockets per HTTP/1 upstream into the one [`Context`], and the hyper engine over it. The
/// native engine is handed the same context by the listener, so the two engines are equals.
fn compose(config: &Config) -> (Arc<Context>, Arc<Proxy>) {
    let router = Router::new(&config.routes);
    let metrics = Arc::new(Metrics::new(
        router.labels(),
        &Mirror::route_shadow_names(config),
    ));
    let mirror = Arc::new(Mirror::new(config, metrics.clone()));
    // In `config.upstreams` order: the order upstream ids index.
    let clients: Vec<UpstreamClient<RequestBody>> = config
        .upstreams
        .iter()
        .map(|(name, upstream)| UpstreamClient::new(name, upstream))
        .collect();
    // Both engines use one set of idle sockets per HTTP/1 upstream.
    let pools = clients.iter().map(|client| client.native_pool().cloned());
    let context = Arc::new(Context::new(config, router, pools, mirror, metrics));
    let proxy = Arc::new(Proxy::new(context.clone(), clients));
    (context, proxy)
}

impl BoundApp {
    /// Binds every listener and the admin port. Fails without serving anything if one cannot be bound.
    pub async fn bind(config: Config) -> Result<BoundApp, StartError> {
        if let Some(problem) = config.admin.start_problem() {
            return Err(StartError::AdminToken(problem));
        }
        let mut listeners = Vec::with_capacity(config.listeners.len());
        for (index, listener) in config.listeners.iter().enumerate() {
            listeners.push(bind(listener.address, format!("listeners[{index}]")).await?);
        }
        let admin = match config.admin.address {
            Some(address) => Some(bind(address, "admin".to_string()).await?),
            None => None,
        };
        for warning in config.warnings() {
            tracing::warn!("{warning}");
        }
        let (context, proxy) = compose(&config);
        let mut tls = Vec::with_capacity(listeners.len());
        for (index, (listener, (_, address))) in config.listeners.iter().zip(&listeners).enumerate()
        {
            let Some(settings) = &listener.tls else {
                tls.push(None);
                continue;
            };
            let label = address.to_string();
            let (server, reloader) =
                TlsListener::new(settings, listener.http2, &label, context.metrics()).map_err(
                    |source| StartError::Tls {
                        address: *address,
                        what: format!("listeners[{index}]"),
                        source,
                    },
                )?;
            tls.push(Some((Arc::new(server), reloader)));
        }
        let report = Reporter::start(&config, context.metrics().clone())?;
        Ok(BoundApp {
            config,
            listeners,
            tls,
            admin,
            context,
            proxy,
            report,
        })
    }

    /// The bound live-traffic addresses, in config order.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|(_, address)| *address).collect()
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
        self.context.metrics().clone()
    }

    /// Serves until `shutdown` resolves, then drains: readiness goes false, listeners stop
    /// accepting, in-flight requests get the grace period, and the admin port closes last.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let grace = self.config.shutdown.grace_period;
        let state = Arc::new(AdminState::new(
            &self.config.admin,
            self.context.metrics().clone(),
            self.report.clone(),
            self.context.mirror().control().clone(),
        ));

        let mut listener_tasks = Vec::new();
        let mut reloaders = Vec::new();
        for (((listener, address), config), tls) in self
            .listeners
            .into_iter()
            .zip(self.config.listeners.iter())
            .zip(self.tls)
        {
            tracing::info!(%address, tls = tls.is_some(), "listening");
            let tls = tls.map(|(server, reloader)| {
                reloaders.push(tokio::spawn(reloader.run(stop_rx.clone())));
                server
            });
            listener_tasks.push(tokio::spawn(listener::serve(
                listener,
                config.clone(),
                self.proxy.clone(),
                tls,
                stop_rx.clone(),
                grace,
            )));
        }
        let (admin_stop_tx, admin_stop_rx) = watch::channel(false);
        let admin_task = self.admin.map(|(listener, address)| {
            tracing::info!(%address, "admin listening");
            tokio::spawn(admin::serve(listener, state.clone(), admin_stop_rx))
        });
        let upkeep = {
            let metrics = self.context.metrics().clone();
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
                loop {
                    ticker.tick().await;
                    metrics.run_upkeep();
                }
            })
        };
        let sink: Arc<dyn PairSink> = self.report.clone();
        self.context.mirror().start(Some(sink));
        state.ready.store(true, Ordering::Release);

        shutdown.await;
        tracing::info!(grace = ?grace, "shutting down");
        state.ready.store(false, Ordering::Release);
        let _ = stop_tx.send(true);
        for task in listener_tasks {
            if let Err(error) = task.await {
                tracing::error!(error = %error, "listener task failed");
            }
        }
        let _ = admin_stop_tx.send(true);
        if let Some(task) = admin_task {
            let _ = task.await;
        }
        upkeep.abort();
        for reloader in reloaders {
            reloader.abort();
        }
        self.context.mirror().stop();
        self.report.stop();
        tracing::info!("stopped");
    }
}
