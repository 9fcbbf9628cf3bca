//! Certificate rotation: cert-manager and ACME clients replace the files in place; a task
//! per TLS listener notices (every `reload_interval`, and on SIGHUP) and serves new
//! handshakes with the new certificate. Established connections keep theirs.
//!
//! A change is a different hash of the certificate and key files' bytes. A new pair that
//! cannot be used (unreadable, malformed, a key of another certificate) keeps the old one,
//! and is logged and counted once for those bytes, not again at every interval.

use crate::telemetry::logging::ErrorChain;
use crate::telemetry::metrics::TlsListenerMetrics;
use crate::telemetry::Metrics;
use crate::tls::certificates::{self, CertificateSet, SniResolver};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// One certificate a listener serves, and the files it came from.
pub struct Served {
    /// `None`: the default certificate.
    names: Option<Vec<String>>,
    cert: PathBuf,
    key: PathBuf,
    /// The files' hash when `current` was read from them.
    fingerprint: Option<u64>,
    /// The hash of files refused last (so a bad pair is reported once).
    refused: Option<u64>,
    current: Arc<CertifiedKey>,
}

impl Served {
    /// A certificate read from `cert` and `key` at start-up.
    pub fn new(
        names: Option<Vec<String>>,
        cert: &Path,
        key: &Path,
        current: Arc<CertifiedKey>,
    ) -> Served {
        Served {
            fingerprint: fingerprint(cert, key),
            names,
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            refused: None,
            current,
        }
    }

    /// The `server_name` labels of its expiry gauge.
    fn labels(&self) -> Vec<&str> {
        match &self.names {
            Some(names) => names.iter().map(String::as_str).collect(),
            None => vec!["default"],
        }
    }
}

/// The files' hash, or `None` when one cannot be read (a rotation half done).
fn fingerprint(cert: &Path, key: &Path) -> Option<u64> {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(&std::fs::read(cert).ok()?);
    hasher.update(&std::fs::read(key).ok()?);
    Some(hasher.digest())
}

/// Watches a listener's certificate files and swaps changed ones into its resolver.
pub struct Reloader {
    served: Vec<Served>,
    resolver: Arc<SniResolver>,
    metrics: Arc<TlsListenerMetrics>,
    all_metrics: Arc<Metrics>,
    listener: String,
    interval: Duration,
    /// Registered when the listener is set up, before the proxy reports ready, so a SIGHUP
    /// sent from then on is never the signal's default action (ending the process).
    hangup: Hangup,
}

impl Reloader {
    /// Starts serving `served` through `resolver` at once, and sets the expiry gauges.
    /// Must be called within the Tokio runtime (it registers for SIGHUP).
    pub(crate) fn new(
        served: Vec<Served>,
        resolver: Arc<SniResolver>,
        metrics: Arc<TlsListenerMetrics>,
        all_metrics: Arc<Metrics>,
        listener: &str,
        interval: Duration,
    ) -> Reloader {
        let reloader = Reloader {
            served,
            resolver,
            metrics,
            all_metrics,
            listener: listener.to_string(),
            interval,
            hangup: Hangup::register(),
        };
        reloader.publish();
        for served in &reloader.served {
            reloader.record_expiry(served);
        }
        reloader
    }

    /// Checks the files every interval and on SIGHUP until `shutdown` is flagged.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut hangup = std::mem::replace(&mut self.hangup, Hangup::none());
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = hangup.received() => {
                    tracing::info!(listener = %self.listener, "SIGHUP: checking certificate files");
                }
                _ = crate::shutdown::flagged(&mut shutdown) => return,
            }
            self.check();
        }
    }

    /// Reads every pair whose files changed; swaps in the ones that load. Returns whether
    /// anything was swapped in.
    pub fn check(&mut self) -> bool {
        let mut changed = false;
        for index in 0..self.served.len() {
            let Some(served) = self.served.get_mut(index) else {
                continue;
            };
            let now = fingerprint(&served.cert, &served.key);
            if now.is_some() && now == served.fingerprint {
                continue;
            }
            // An unreadable file is refused under the hash `None`: reported once too.
            let refused_key = now.unwrap_or(0);
            if served.refused == Some(refused_key) {
                continue;
            }
            match certificates::load(&served.cert, &served.key) {
                Ok(key) => {
                    served.current = key;
                    served.fingerprint = now;
                    served.refused = None;
                    self.metrics.reloaded(true);
                    tracing::info!(
                        listener = %self.listener,
                        cert = %served.cert.display(),
                        "certificate reloaded; new handshakes get it"
                    );
                    changed = true;
                    if let Some(served) = self.served.get(index) {
                        self.record_expiry(served);
                    }
                }
                Err(error) => {
                    served.refused = Some(refused_key);
                    self.metrics.reloaded(false);
                    tracing::warn!(
                        listener = %self.listener,
                        error = %ErrorChain(&error),
                        "certificate files changed but cannot be used; still serving the previous certificate"
                    );
                }
            }
        }
        if changed {
            self.publish();
        }
        changed
    }

    /// Hands the current certificates to the resolver, for the handshakes from now on.
    fn publish(&self) {
        let mut set = CertificateSet::default();
        for served in &self.served {
            match &served.names {
                Some(names) => set.add(names, &served.current),
                None => set.set_default(served.current.clone()),
            }
        }
        self.resolver.replace(set);
    }

    fn record_expiry(&self, served: &Served) {
        let Some(expiry) = served
            .current
            .end_entity_cert()
            .ok()
            .and_then(|leaf| crate::tls::x509::not_after(leaf))
        else {
            return;
        };
        for name in served.labels() {
            self.all_metrics
                .tls_certificate_expiry(&self.listener, name)
                .set(expiry as f64);
        }
    }
}

/// SIGHUP, where there is one: a reload on demand.
struct Hangup(#[cfg(unix)] Option<tokio::signal::unix::Signal>);

impl Hangup {
    fn register() -> Hangup {
        #[cfg(unix)]
        {
            let kind = tokio::signal::unix::SignalKind::hangup();
            Hangup(
                tokio::signal::unix::signal(kind)
                    .map_err(|error| {
                        tracing::warn!(error = %error, "no reload on SIGHUP: cannot listen for it");
                    })
                    .ok(),
            )
        }
        #[cfg(not(unix))]
        Hangup()
    }

    fn none() -> Hangup {
        #[cfg(unix)]
        {
            Hangup(None)
        }
        #[cfg(not(unix))]
        Hangup()
    }

    /// Resolves at each SIGHUP; never, without the signal.
    async fn received(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = self.0.as_mut() {
            if signal.recv().await.is_some() {
                return;
            }
        }
        std::future::pending().await
    }
}
