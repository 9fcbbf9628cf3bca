//! The running listeners, keyed by their configured address, and how a reload changes them:
//! a new address is bound, a removed one stops accepting and drains, and one whose settings
//! changed is served by a new task on the same socket (no connection is refused meanwhile).
//!
//! A change is prepared first (every bind and TLS setup that can fail) and only then
//! committed, so a reload that cannot bind a new address changes nothing.

use crate::config::{settings_text, ListenerConfig};
use crate::generation::Current;
use crate::listener::reload::Reloader;
use crate::listener::tls::TlsListener;
use crate::start::StartError;
use crate::telemetry::Metrics;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A listener ready to be served: its socket bound, its TLS set up.
pub struct Prepared {
    config: ListenerConfig,
    settings: String,
    socket: Arc<TcpListener>,
    bound: SocketAddr,
    tls: Option<(Arc<TlsListener>, Reloader)>,
    /// The running listener it is, unchanged (nothing to start).
    kept: Option<usize>,
    /// Its index in the config (for errors).
    index: usize,
}

impl Prepared {
    /// The address it is bound to.
    pub fn bound(&self) -> SocketAddr {
        self.bound
    }
}

/// A listener being served.
struct Running {
    configured: SocketAddr,
    settings: String,
    socket: Arc<TcpListener>,
    bound: SocketAddr,
    retire: watch::Sender<bool>,
    task: JoinHandle<()>,
    reloader: Option<JoinHandle<()>>,
}

/// What a reload did to the listeners, for its report.
#[derive(Debug, Default)]
pub struct ListenerChanges {
    /// Bound addresses of listeners added.
    pub added: Vec<SocketAddr>,
    /// Bound addresses of listeners whose settings changed.
    pub changed: Vec<SocketAddr>,
    /// Bound addresses of listeners removed (now draining).
    pub removed: Vec<SocketAddr>,
}

/// The listeners of the running proxy.
#[derive(Default)]
pub struct ListenerSet {
    running: Vec<Running>,
}

/// Binds `address`; `what` names it in the error (`listeners[0]`, `admin`).
pub(crate) async fn bind(
    address: SocketAddr,
    what: String,
) -> Result<(TcpListener, SocketAddr), StartError> {
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

impl ListenerSet {
    /// Binds and sets up what `configs` needs beyond the running listeners: the running
    /// listeners are not touched, and nothing is served until [`ListenerSet::commit`].
    pub async fn prepare(
        &self,
        configs: &[ListenerConfig],
        metrics: &Arc<Metrics>,
    ) -> Result<Vec<Prepared>, StartError> {
        let mut prepared = Vec::with_capacity(configs.len());
        // Each running listener goes on as one configured listener at most (two listeners
        // configured on port 0 are two sockets).
        let mut claimed = vec![false; self.running.len()];
        for (index, config) in configs.iter().enumerate() {
            let settings = settings_text(config);
            let running = self.running.iter().enumerate().position(|(at, running)| {
                running.configured == config.address && !claimed.get(at).copied().unwrap_or(true)
            });
            if let Some(slot) = running.and_then(|at| claimed.get_mut(at)) {
                *slot = true;
            }
            let (socket, bound) = match running.and_then(|at| self.running.get(at)) {
                Some(running) => (running.socket.clone(), running.bound),
                None => {
                    let (socket, bound) =
                        bind(config.address, format!("listeners[{index}]")).await?;
                    (Arc::new(socket), bound)
                }
            };
            let kept = running.filter(|at| {
                self.running
                    .get(*at)
                    .is_some_and(|running| running.settings == settings)
            });
            let tls = match (&config.tls, kept) {
                (Some(tls), None) => {
                    let label = bound.to_string();
                    let built =
                        TlsListener::new(tls, config.http2, &label, metrics).map_err(|source| {
                            StartError::Tls {
                                address: bound,
                                what: format!("listeners[{index}]"),
                                source,
                            }
                        })?;
                    Some((Arc::new(built.0), built.1))
                }
                _ => None,
            };
            prepared.push(Prepared {
                config: config.clone(),
                settings,
                socket,
                bound,
                tls,
                kept,
                index,
            });
        }
        Ok(prepared)
    }

    /// Serves `prepared` (as [`ListenerSet::prepare`] made it from this set): new and
    /// changed listeners start, unchanged ones go on, and running ones that are not in it
    /// (removed, or replaced by a changed one) stop accepting and drain.
    pub fn commit(
        &mut self,
        prepared: Vec<Prepared>,
        current: &Arc<Current>,
        shutdown: &watch::Receiver<bool>,
        grace: Duration,
    ) -> ListenerChanges {
        let mut changes = ListenerChanges::default();
        let mut previous: Vec<Option<Running>> = std::mem::take(&mut self.running)
            .into_iter()
            .map(Some)
            .collect();
        for listener in prepared {
            if let Some(running) = listener
                .kept
                .and_then(|at| previous.get_mut(at))
                .and_then(Option::take)
            {
                self.running.push(running);
                continue;
            }
            let replaced = previous.iter().flatten().any(|running| {
                running.configured == listener.config.address && running.bound == listener.bound
            });
            if replaced {
                changes.changed.push(listener.bound);
            } else {
                changes.added.push(listener.bound);
            }
            self.running.push(start(listener, current, shutdown, grace));
        }
        for running in previous.into_iter().flatten() {
            if !changes.changed.contains(&running.bound) {
                changes.removed.push(running.bound);
            }
            retire(running);
        }
        changes
    }

    /// The bound addresses, in config order.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.running.iter().map(|running| running.bound).collect()
    }

    /// Waits for every listener to finish draining (after shutdown was flagged), and stops
    /// their certificate reloaders.
    pub async fn join(&mut self) {
        for running in self.running.drain(..) {
            if let Err(error) = running.task.await {
                tracing::error!(error = %error, "listener task failed");
            }
            if let Some(reloader) = running.reloader {
                reloader.abort();
            }
        }
    }
}

/// Starts serving one prepared listener.
fn start(
    listener: Prepared,
    current: &Arc<Current>,
    shutdown: &watch::Receiver<bool>,
    grace: Duration,
) -> Running {
    let Prepared {
        config,
        settings,
        socket,
        bound,
        tls,
        index,
        ..
    } = listener;
    tracing::info!(address = %bound, listener = index, tls = tls.is_some(), "listening");
    let (retire_tx, retire_rx) = watch::channel(false);
    let mut reloader = None;
    let tls = tls.map(|(server, files)| {
        reloader = Some(tokio::spawn(files.run(shutdown.clone())));
        server
    });
    let configured = config.address;
    let task = tokio::spawn(crate::listener::serve(
        socket.clone(),
        config,
        current.clone(),
        tls,
        shutdown.clone(),
        retire_rx,
        grace,
    ));
    Running {
        configured,
        settings,
        socket,
        bound,
        retire: retire_tx,
        task,
        reloader,
    }
}

/// Stops a listener accepting; its task drains its connections and ends on its own.
fn retire(running: Running) {
    let _ = running.retire.send(true);
    if let Some(reloader) = running.reloader {
        reloader.abort();
    }
    tracing::info!(address = %running.bound, "listener retired by a reload; draining");
    // The task is not awaited: it ends when its last connection does.
    drop(running.task);
}
