//! The recorder: takes captured exchanges from the mirror's capture point without waiting,
//! and writes them on its own thread.
//!
//! The live path asks [`Recorder::samples`] once per request (a route look-up and, below
//! 100 %, one random number) and, when the request body copy is complete,
//! [`Recorder::submit`]s the captured request with the cell where the primary's answer will
//! be published. A task waits for that answer, then hands the pair to a bounded channel
//! (`try_send`: never blocks); the writer thread redacts, serializes and appends it. Every
//! exchange sampled ends in exactly one `shadowtap_record_entries_total{result}`.

use super::entry::{self, Caps, Exchange};
use crate::config::{Config, RecordConfig};
use crate::message::pair::{CapturedRequest, CapturedResponse, PrimaryCell};
use crate::report::difflog::DiffLog;
use crate::report::samples::Redactor;
use crate::telemetry::metrics::{RECORD_BYTES_TOTAL, RECORD_ENTRIES_TOTAL};
use crate::telemetry::Metrics;
use metrics::Counter;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::SystemTime;

/// Why a sampled exchange was not written (the `result` label's dropped values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// The writer was behind and its queue full.
    QueueFull,
    /// The request body was over the capture cap.
    BodyTooLarge,
    /// The mirror's byte budget was spent.
    OverBudget,
    /// The client went away before its body was complete.
    ClientAborted,
    /// The primary failed, or answered without reading the whole body, while the body was
    /// still arriving: the request could not be captured whole.
    PrimaryFailed,
    /// The primary gave no complete answer (it failed, or the client hung up).
    NoAnswer,
}

/// One counter per `result`, resolved once.
struct Counters {
    written: Counter,
    queue_full: Counter,
    body_too_large: Counter,
    over_budget: Counter,
    client_aborted: Counter,
    primary_failed: Counter,
    no_answer: Counter,
    error: Counter,
    bytes: Counter,
}

impl Counters {
    fn new(metrics: &Metrics) -> Counters {
        let result = |value: &str| metrics.counter(RECORD_ENTRIES_TOTAL, &[("result", value)]);
        Counters {
            written: result("written"),
            queue_full: result("dropped_queue_full"),
            body_too_large: result("dropped_body_too_large"),
            over_budget: result("dropped_over_budget"),
            client_aborted: result("dropped_client_aborted"),
            primary_failed: result("dropped_primary_failed"),
            no_answer: result("dropped_no_answer"),
            error: result("error"),
            bytes: metrics.counter(RECORD_BYTES_TOTAL, &[]),
        }
    }

    fn dropped(&self, reason: Dropped) -> &Counter {
        match reason {
            Dropped::QueueFull => &self.queue_full,
            Dropped::BodyTooLarge => &self.body_too_large,
            Dropped::OverBudget => &self.over_budget,
            Dropped::ClientAborted => &self.client_aborted,
            Dropped::PrimaryFailed => &self.primary_failed,
            Dropped::NoAnswer => &self.no_answer,
        }
    }
}

/// A route's recording rules: its name and redaction (`None`: not recorded).
struct RouteRecording {
    name: Arc<str>,
    redactor: Redactor,
}

/// A complete exchange on its way to the writer thread.
struct Job {
    route: Arc<str>,
    route_index: usize,
    request: Arc<CapturedRequest>,
    response: Arc<CapturedResponse>,
    started: SystemTime,
}

/// Records sampled exchanges to a rotated file (see the module docs).
pub struct Recorder {
    config: RecordConfig,
    /// What the recorder was built from ([`Recorder::key`]).
    key: String,
    routes: Arc<Vec<Option<RouteRecording>>>,
    sender: SyncSender<Job>,
    /// Exchanges waiting for the primary's answer or the writer; held to the queue size.
    pending: Arc<AtomicUsize>,
    counters: Arc<Counters>,
}

/// Why recording could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the recording {path}")]
pub struct RecordError {
    /// The file.
    pub path: String,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

impl Recorder {
    /// Opens the file and starts the writer thread; `None` when the config records nothing.
    pub fn start(config: &Config, metrics: &Metrics) -> Result<Option<Arc<Recorder>>, RecordError> {
        let Some(record) = config.record.clone() else {
            return Ok(None);
        };
        let log = DiffLog::open(
            Path::new(&record.file),
            record.max_file_bytes,
            record.rotated_files(),
        )
        .map_err(|source| RecordError {
            path: record.file.clone(),
            source,
        })?;
        let routes: Arc<Vec<Option<RouteRecording>>> = Arc::new(
            config
                .routes
                .iter()
                .map(|route| {
                    record.records_route(&route.name).then(|| RouteRecording {
                        name: Arc::from(route.name.as_str()),
                        redactor: Redactor::for_route(route, &config.compare),
                    })
                })
                .collect(),
        );
        let counters = Arc::new(Counters::new(metrics));
        let pending = Arc::new(AtomicUsize::new(0));
        let (sender, receiver) = sync_channel(record.queue_size);
        let caps = Caps {
            request: record.max_body_bytes,
            response: record.max_response_body_bytes,
        };
        let writer = Writer {
            log,
            routes: routes.clone(),
            counters: counters.clone(),
            pending: pending.clone(),
            caps,
        };
        std::thread::Builder::new()
            .name("shadowtap-record".into())
            .spawn(move || writer.run(receiver))
            .map_err(|source| RecordError {
                path: record.file.clone(),
                source,
            })?;
        Ok(Some(Arc::new(Recorder {
            key: Recorder::key(config),
            config: record,
            routes,
            sender,
            pending,
            counters,
        })))
    }

    /// Everything a recorder is built from: `[record]`, the routes in order (their indices
    /// are its route table) with their redaction, and the global redacted headers.
    pub fn key(config: &Config) -> String {
        let routes: Vec<(&str, &[String])> = config
            .routes
            .iter()
            .map(|route| {
                (
                    route.name.as_str(),
                    route.compare.redact_pointers.as_slice(),
                )
            })
            .collect();
        crate::config::settings_text(&(&config.record, routes, &config.compare.redact_headers))
    }

    /// Whether a reloaded config can keep this recorder (its file and queue carry on).
    pub fn fits(&self, config: &Config) -> bool {
        self.key == Recorder::key(config)
    }

    /// Whether this route is recorded at all.
    pub fn records_route(&self, route_index: usize) -> bool {
        matches!(self.routes.get(route_index), Some(Some(_)))
    }

    /// Whether this request is recorded: the route filter, then the recording's own sampling.
    pub fn samples(&self, route_index: usize) -> bool {
        self.records_route(route_index)
            && (self.config.sample >= 100.0 || fastrand::f64() * 100.0 < self.config.sample)
    }

    /// The request body cap for a route that only records.
    pub fn max_body_bytes(&self) -> usize {
        self.config.max_body_bytes
    }

    /// Counts a sampled exchange that could not be captured.
    pub fn dropped(&self, reason: Dropped) {
        self.counters.dropped(reason).increment(1);
    }

    /// Hands over a captured request; its entry is written once the primary's answer is
    /// published in `primary`. Never waits: past the queue size it is dropped and counted.
    pub fn submit(
        &self,
        route_index: usize,
        request: Arc<CapturedRequest>,
        primary: PrimaryCell,
        started: SystemTime,
    ) {
        let Some(Some(route)) = self.routes.get(route_index) else {
            return;
        };
        // On a mirrored route the copy is taken within the mirror's cap: a body over the
        // recording's own is not recorded, as a cut request would replay as another request.
        if request.body.len() > self.config.max_body_bytes {
            self.dropped(Dropped::BodyTooLarge);
            return;
        }
        if self.pending.fetch_add(1, Ordering::Relaxed) >= self.config.queue_size {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            self.dropped(Dropped::QueueFull);
            return;
        }
        let route = route.name.clone();
        let sender = self.sender.clone();
        let counters = self.counters.clone();
        let pending = self.pending.clone();
        tokio::spawn(async move {
            let answer = primary.wait().await.clone();
            let Some(response) = answer else {
                pending.fetch_sub(1, Ordering::Relaxed);
                counters.no_answer.increment(1);
                return;
            };
            let job = Job {
                route,
                route_index,
                request,
                response,
                started,
            };
            match sender.try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    pending.fetch_sub(1, Ordering::Relaxed);
                    counters.queue_full.increment(1);
                }
            }
        });
    }
}

/// The writer thread's state.
struct Writer {
    log: DiffLog,
    routes: Arc<Vec<Option<RouteRecording>>>,
    counters: Arc<Counters>,
    pending: Arc<AtomicUsize>,
    caps: Caps,
}

impl Writer {
    /// Writes until every sender is gone (the recorder and its waiting tasks).
    fn run(mut self, receiver: Receiver<Job>) {
        let mut warned = false;
        while let Ok(job) = receiver.recv() {
            let written = self.write(&job);
            self.pending.fetch_sub(1, Ordering::Relaxed);
            match written {
                Ok(bytes) => {
                    self.counters.written.increment(1);
                    self.counters.bytes.increment(bytes);
                }
                Err(error) => {
                    self.counters.error.increment(1);
                    // Once: a full disk would otherwise log a line per request.
                    if !warned {
                        tracing::warn!(%error, "recording: cannot write an entry (counted in shadowtap_record_entries_total{{result=\"error\"}})");
                        warned = true;
                    }
                }
            }
        }
    }

    fn write(&mut self, job: &Job) -> std::io::Result<u64> {
        let Some(Some(route)) = self.routes.get(job.route_index) else {
            return Ok(0);
        };
        let exchange = Exchange {
            route: &job.route,
            request: &job.request,
            response: &job.response,
            started: job.started,
        };
        let entry = entry::build(&exchange, &route.redactor, self.caps);
        let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.log.write_line(&line)?;
        Ok(line.len() as u64)
    }
}
