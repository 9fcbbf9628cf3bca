//! `shadowtap replay`: recorded traffic (from `--record`, or a browser's `.har`) sent again,
//! the shadow's answers compared with the recorded primary answers (or a live `--primary`'s),
//! judged by the canary verdict, for CI.
//!
//! A replay runs the real proxy in-process on loopback (the same comparison engine, route
//! config, noise learning with `--secondary`, and redaction as `shadowtap run`), puts the
//! recorded answers behind it as the primary when no `--primary` is given, and sends the
//! selected entries through it. The verdict is asked through its admin port, as `shadowtap
//! verdict --admin` would.
//!
//! | module | role |
//! |---|---|
//! | [`select`] | the side-effect policy and the route, time and count filters |
//! | [`answers`] | the recorded primary: a loopback server answering as recorded |
//! | [`setup`] | the proxy config: the user's routes and rules, the replay's upstreams |
//! | [`send`] | pacing and sending |
//! | [`summary`] | the per-route table and the divergent paths |

pub mod answers;
pub mod select;
pub mod send;
pub mod setup;
pub mod summary;

use crate::config::{Config, Overrides, VerdictConfig};
use crate::record::{read_files, Skipped};
use crate::telemetry::exposition;
use crate::telemetry::metrics::{COMPARISONS_TOTAL, MIRROR_REQUESTS_TOTAL};
use select::{Excluded, Filters};
use send::{Pacing, Sent};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long a replay waits, after the last answer, for the shadow's answers and their
/// comparisons to settle before it judges.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// What to replay, against what, how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Recordings, read in order.
    pub files: Vec<PathBuf>,
    /// The build under test.
    pub shadow: String,
    /// A live stable build; without it, the recorded answers are the primary's.
    pub primary: Option<String>,
    /// A second stable build, for noise detection.
    pub secondary: Option<String>,
    /// Route config (routes, `[compare]`, `[verdict]`, `[mirror]` limits).
    pub config: Option<PathBuf>,
    /// Verdict thresholds from flags, laid over the config's.
    pub thresholds: crate::config::verdict::Overrides,
    /// Pacing.
    pub pacing: Pacing,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Which entries.
    pub filters: Filters,
    /// Show a progress bar (only ever on a terminal).
    pub progress: bool,
}

/// Why a replay could not be judged (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A recording could not be read.
    #[error(transparent)]
    Read(#[from] crate::record::read::ReadError),
    /// The route config could not be read or is invalid.
    #[error("the route config is invalid: {0}")]
    Config(String),
    /// An upstream given on the command line does not accept connections.
    #[error("the {role} {url} is unreachable: {reason}")]
    Unreachable {
        /// shadow, primary or secondary.
        role: &'static str,
        /// Its URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Nothing is left to replay.
    #[error("nothing to replay: {0}")]
    Empty(String),
    /// The proxy or the recorded answers could not start.
    #[error("cannot start the replay")]
    Start(#[source] std::io::Error),
    /// The verdict could not be asked.
    #[error("cannot judge the replay")]
    Verdict(#[source] crate::verdict::SourceError),
}

/// What a replay did, beside the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    /// Entries read.
    pub read: usize,
    /// Lines skipped (corrupt or truncated).
    pub skipped: usize,
    /// Entries the filters left out.
    pub excluded: Excluded,
    /// Requests sent and answered through the proxy.
    pub answered: u64,
    /// Requests sent and not answered.
    pub failed: u64,
    /// Wall time of the sending, in seconds.
    pub seconds: f64,
}

/// A finished replay.
#[derive(Debug)]
pub struct Outcome {
    /// The counts.
    pub counts: Counts,
    /// The lines skipped, with their line numbers.
    pub skipped: Vec<Skipped>,
    /// Per-route comparison results.
    pub routes: Vec<crate::report::RouteSummary>,
    /// Divergent samples (redacted).
    pub samples: Vec<crate::report::samples::DivergentPair>,
    /// The verdict.
    pub verdict: crate::verdict::Report,
}

/// Runs a replay to its verdict.
pub async fn run(options: Options) -> Result<Outcome, ReplayError> {
    let loaded = read_files(&options.files)?;
    let read = loaded.entries.len();
    let skipped = loaded.skipped;
    let (entries, excluded) = options
        .filters
        .apply(loaded.entries, options.primary.is_none());
    if entries.is_empty() {
        return Err(ReplayError::Empty(format!(
            "{read} entries read, {} skipped, none left by the filters (only GET, HEAD and OPTIONS are replayed unless --methods says otherwise)",
            skipped.len()
        )));
    }
    reachable("shadow", &options.shadow).await?;
    if let Some(primary) = &options.primary {
        reachable("primary", primary).await?;
    }
    if let Some(secondary) = &options.secondary {
        reachable("secondary", secondary).await?;
    }
    let user = match &options.config {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|error| {
            ReplayError::Config(format!("cannot read {}: {error}", path.display()))
        })?),
        None => None,
    };
    let entries = Arc::new(entries);
    let (stop_tx, stop_rx) = watch::channel(false);
    let recorded = options.primary.is_none();
    let primary = match &options.primary {
        Some(primary) => primary.clone(),
        None => {
            let addr = answers::start(entries.clone(), stop_rx.clone())
                .await
                .map_err(ReplayError::Start)?;
            format!("http://{addr}")
        }
    };
    let text = setup::config_text(
        user.as_deref(),
        &setup::Targets {
            primary: &primary,
            shadow: &options.shadow,
            secondary: options.secondary.as_deref(),
        },
    )
    .map_err(ReplayError::Config)?;
    let config = Config::from_toml(&text, &Overrides::default()).map_err(|error| {
        ReplayError::Config(crate::telemetry::logging::ErrorChain(&error).to_string())
    })?;
    let mut thresholds: VerdictConfig = config.verdict.clone();
    thresholds.thresholds = options.thresholds.over(&thresholds.thresholds);
    let app = crate::BoundApp::bind(config)
        .await
        .map_err(|error| ReplayError::Start(std::io::Error::other(error)))?;
    let proxy =
        app.listen_addrs().first().copied().ok_or_else(|| {
            ReplayError::Start(std::io::Error::other("the proxy has no listener"))
        })?;
    let admin = app
        .admin_addr()
        .ok_or_else(|| ReplayError::Start(std::io::Error::other("the proxy has no admin port")))?;
    let report = app.report();
    let metrics = app.metrics();
    let mut proxy_stop = stop_rx.clone();
    let server =
        tokio::spawn(app.serve(async move { crate::shutdown::flagged(&mut proxy_stop).await }));

    let sent = Arc::new(Sent::default());
    let progress = options
        .progress
        .then(|| summary::Progress::start(entries.len() as u64, sent.clone(), report.clone()));
    let started = std::time::Instant::now();
    send::send_all(
        entries.clone(),
        proxy,
        options.pacing,
        options.concurrency,
        recorded,
        sent.clone(),
    )
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let answered = sent.answered.load(Ordering::Relaxed);
    settle(&metrics, answered).await;
    if let Some(progress) = progress {
        progress.finish();
    }
    let verdict = crate::verdict::Request {
        source: crate::verdict::Source::Admin(format!("http://{admin}")),
        config: thresholds,
        timeout: Duration::from_secs(10),
        access: crate::verdict::Access::default(),
    }
    .evaluate()
    .await;
    let routes = report.routes();
    let samples = report.samples(None, 100);
    let _ = stop_tx.send(true);
    let _ = server.await;
    let verdict = verdict.map_err(ReplayError::Verdict)?;
    Ok(Outcome {
        counts: Counts {
            read,
            skipped: skipped.len(),
            excluded,
            answered,
            failed: sent.failed.load(Ordering::Relaxed),
            seconds,
        },
        skipped,
        routes,
        samples,
        verdict,
    })
}

/// Whether `url`'s host accepts a TCP connection within a few seconds.
async fn reachable(role: &'static str, url: &str) -> Result<(), ReplayError> {
    let unreachable = |reason: String| ReplayError::Unreachable {
        role,
        url: url.to_string(),
        reason,
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|error: http::uri::InvalidUri| unreachable(error.to_string()))?;
    let host = uri
        .host()
        .ok_or_else(|| unreachable("the URL names no host".into()))?;
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(unreachable(error.to_string())),
        Err(_) => Err(unreachable("no answer within 5s".into())),
    }
}

/// Waits until every answered request's shadow copy has an outcome, and the comparisons
/// stop moving (workers pick pairs up within milliseconds), at most [`SETTLE_LIMIT`].
async fn settle(metrics: &crate::telemetry::Metrics, answered: u64) {
    let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
    let total = |name: &str, text: &str| -> f64 {
        exposition::samples(text, name)
            .iter()
            .filter(|sample| sample.label("shadow") == Some("shadow"))
            .map(|sample| sample.value)
            .sum()
    };
    let mut last = -1.0;
    let mut steady = 0;
    while tokio::time::Instant::now() < deadline {
        let text = metrics.render();
        let outcomes = total(MIRROR_REQUESTS_TOTAL, &text);
        let compared = total(COMPARISONS_TOTAL, &text);
        if outcomes >= answered as f64 {
            if compared == last {
                steady += 1;
                if steady >= 5 {
                    return;
                }
            } else {
                steady = 0;
            }
            last = compared;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
